"""Helpers for the fault tests: a seeded scratch database, a Redis server of the test's own, and
what every answer and log under a fault must look like."""

import asyncio
import contextlib
import socket
import struct
import subprocess
import time
from contextlib import asynccontextmanager

import httpx
from redis.asyncio import Redis

from liaison.app import create_app
from tests.conftest import PASSWORD, make_settings, reset_pg, seed_world
from tests.consults.conftest import CONSULT
from tests.live import Node, free_port, http, put_on_call


@asynccontextmanager
async def seeded(url: str):
    """(app, world): the world seeded on `url` by an app in this process; b-specialist on call for all."""
    await reset_pg(url)
    app = create_app(make_settings(url, None, escalation_worker=False, webhooks_worker=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://liaison.test") as client:
            world = await seed_world(app, client)
            await put_on_call(
                app.state.sessionmaker,
                org_id=world.orgs["B"],
                user_ids=[world.users["b-specialist"]],
                specialty=CONSULT["specialty"],
                max_concurrent=1000,
            )
            yield app, world


def node_for(url: str, tmp_path, redis_url: str | None = None, **overrides) -> Node:
    """A `liaison serve` node on `url` whose log is kept in tmp_path for assert_clean_log."""
    return Node(make_settings(url, redis_url, **overrides), log=tmp_path / f"node-{time.monotonic_ns()}.log")


async def sign_in(node: Node, *users: str) -> list[dict[str, str]]:
    """Authorization headers of `users`, signed in through the node."""
    async with http(node.host) as c:
        answers = [
            await c.post("/api/v1/auth/login", json={"username": u, "password": PASSWORD}) for u in users
        ]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    return [{"Authorization": f"Bearer {a.json()['access_token']}"} for a in answers]


def assert_unavailable(resp: httpx.Response, store: str = "database") -> None:
    """A 503 problem+json naming the store, with Retry-After."""
    assert resp.status_code == 503, (resp.status_code, resp.text[:300])
    assert resp.headers["content-type"] == "application/problem+json"
    assert int(resp.headers["retry-after"]) >= 1
    body = resp.json()
    assert body["code"] == "unavailable" and body["status"] == 503 and body["store"] == store


def assert_clean_log(node: Node, *, tracebacks: bool = False) -> None:
    """No request crashed the node; unless `tracebacks`, nothing was logged with a traceback at all."""
    log = node.log_text()
    assert "Exception in ASGI application" not in log, log[-3000:]
    assert tracebacks or "Traceback" not in log, log[-3000:]


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, to stop and start at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    async def start(self) -> "PrivateRedis":
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            for _ in range(100):
                try:
                    await probe.ping()
                    return self
                except Exception:
                    await asyncio.sleep(0.05)
        finally:
            await probe.aclose()
        raise AssertionError(f"redis-server on {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class CuttingProxy:
    """A TCP proxy to Redis; after `cut()`, each connection opened before it is reset on its next use,
    as after a failover behind a virtual address: the client never saw it close."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.generation = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> "CuttingProxy":
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        return self

    def cut(self) -> None:
        self.generation += 1

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        born = self.generation
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        legs = [
            asyncio.create_task(self._pump(client_r, up_w, client_w, born)),
            asyncio.create_task(self._pump(up_r, client_w, None, born)),
        ]
        await asyncio.wait(legs, return_when=asyncio.FIRST_COMPLETED)
        for leg in legs:
            leg.cancel()
        for writer in (up_w, client_w):
            writer.close()

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, client_w, born: int) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await src.read(65536):
                if client_w is not None and self.generation != born:
                    sock = client_w.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    client_w.transport.abort()  # a reset, not a close: what a dead peer's host answers
                    return
                dst.write(data)
                await dst.drain()
