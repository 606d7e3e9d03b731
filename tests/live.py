"""A real uvicorn server on 127.0.0.1 inside the test's event loop, and helpers to seed rosters."""

import asyncio
import json
import re
import uuid
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime, timedelta

import httpx
import uvicorn
import websockets

from api.db import commit
from liaison.app import create_app, uvicorn_options
from rosters.models import Roster, Shift, SpecialistProfile
from signaling.fabric.ledger import RedisLedger


@asynccontextmanager
async def serve(settings, *, settled: bool = True):
    """Start the app under uvicorn on a free port; yield (app, base_url). `settled`: as a node that
    has run for a while (see settle)."""
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="on", log_level="warning", **uvicorn_options(settings)
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    if settled:
        await settle(app)
    try:
        yield app, f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        from tests.conftest import _report_stuck_shutdown

        watchdog = asyncio.create_task(_report_stuck_shutdown(8))  # before the wait below gives up
        await asyncio.wait_for(task, timeout=10)
        watchdog.cancel()


async def settle(app) -> None:
    """Date the call ledger's memory far back, as on a node that has run for longer than a call token
    lives. (A fresh one sends every join to the database for its first seconds: test_join_path.)"""
    ledger = app.state.ledger
    if isinstance(ledger, RedisLedger):
        await app.state.redis.set(ledger.since_key, 0)
    else:
        ledger.since = 0.0


async def put_on_call(
    sessions,
    *,
    org_id: uuid.UUID,
    user_ids: list[uuid.UUID],
    specialty: str,
    tier: int = 1,
    languages: list[str] | None = None,
    max_concurrent: int = 5,
) -> None:
    """Give each specialist a profile and a shift covering now on the org's roster for the specialty."""
    now = datetime.now(UTC)
    async with sessions() as session:
        roster = Roster(org_id=org_id, specialty=specialty, name=f"{specialty} tier {tier}")
        session.add(roster)
        for uid in user_ids:
            if await session.get(SpecialistProfile, uid) is None:
                session.add(
                    SpecialistProfile(
                        user_id=uid,
                        org_id=org_id,
                        specialties=[specialty],
                        languages=languages or ["en"],
                        max_concurrent=max_concurrent,
                    )
                )
        await session.flush()
        session.add_all(
            [
                Shift(
                    roster_id=roster.id,
                    org_id=org_id,
                    specialist_id=uid,
                    tier=tier,
                    starts_at=now - timedelta(hours=1),
                    ends_at=now + timedelta(hours=8),
                )
                for uid in user_ids
            ]
        )
        await commit(session)


class EventClient:
    """A connected events WebSocket that collects what it is sent."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.events: list[dict] = []

    @classmethod
    @asynccontextmanager
    async def connect(cls, host: str, token: str, last_event_id: int | None = None):
        async with websockets.connect(f"ws://{host}/api/v1/events", compression=None) as ws:
            hello = {"type": "auth", "token": token} | (
                {"last_event_id": last_event_id} if last_event_id is not None else {}
            )
            await ws.send(json.dumps(hello))
            ready = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert ready["type"] == "ready", ready
            yield cls(ws)

    async def wait_for(self, event: str, timeout: float = 5.0, **match) -> dict:
        """The first (already received or next) event of that type whose data matches `match`."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for e in self.events:
                if e.get("event") == event and all(
                    e.get(k) == v or e["data"].get(k) == v for k, v in match.items()
                ):
                    return e
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(
                    f"no {event} {match} within {timeout}s; got {[e.get('event') for e in self.events]}"
                )
            try:
                self.events.append(json.loads(await asyncio.wait_for(self.ws.recv(), left)))
            except TimeoutError:
                continue


def http(host: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://{host}", timeout=20)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    """`liaison serve` in its own process, as production runs it."""

    def __init__(self, settings, *, port: int | None = None, workers: int = 1, log=None) -> None:
        import os
        import sys

        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
        for name, value in settings.model_dump().items():
            if value is not None:
                # Lists and maps as JSON, as pydantic-settings reads them ("['a']" would not parse).
                text = json.dumps(value) if isinstance(value, list | dict) else str(value)
                env[f"LIAISON_{name.upper()}"] = text
        self._cmd = [
            sys.executable,
            "-m",
            "liaison",
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        self._env = env
        self.log = log  # a path: the node's stderr (its log) goes there, to be read with log_text()
        self.proc = None

    async def start(self) -> "Node":
        return await self.spawn().ready()

    def spawn(self) -> "Node":
        """Start the process without waiting for it (nodes spawned back to back start together)."""
        import os
        import subprocess

        with open(self.log or os.devnull, "ab") as log:  # the child keeps its own copy of the file
            self.proc = subprocess.Popen(
                self._cmd,
                env=self._env,
                stdout=subprocess.DEVNULL,
                stderr=log if self.log else subprocess.PIPE,
            )
        return self

    async def ready(self, within: float = 180.0) -> "Node":
        """Wait until /healthz answers; a process that exits first fails at once, with what it said.
        The bound is time, not tries: on a machine loaded by other test runs a node has taken longer
        than a minute to start (300 quick refusals of 0.05 s each came to 15 s, then the read below
        blocked on the live process's pipe)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        async with httpx.AsyncClient(base_url=f"http://{self.host}") as c:
            while loop.time() < deadline:
                if self.proc.poll() is not None:
                    raise AssertionError(
                        f"node on {self.port} exited {self.proc.returncode}: {self.stderr()!r}"
                    )
                try:
                    if (await c.get("/healthz")).status_code == 200:
                        return self
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        self.proc.kill()  # first, so that reading what it said ends at its pipe's end
        self.proc.wait(10)
        raise AssertionError(f"node on {self.port} did not start within {within} s: {self.stderr()!r}")

    def log_text(self) -> str:
        from pathlib import Path

        return Path(self.log).read_text(errors="replace")

    def stderr(self) -> str:
        """What an exited process wrote to stderr: its exception's line, or else the tail."""
        said = self.log_text() if self.log else self.proc.stderr.read().decode(errors="replace")
        return "".join(re.findall(r"^[\w.]+(?:Error|Exception): .*", said, re.M)[-1:]) or said[-3000:]

    def kill(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close_pipe()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
        self._close_pipe()

    def _close_pipe(self) -> None:
        # Once the process is gone nobody reads its stderr; an unclosed pipe is a ResourceWarning.
        if self.proc and self.proc.stderr and self.proc.poll() is not None:
            self.proc.stderr.close()


@asynccontextmanager
async def live_world(env: dict, **overrides):
    """A real server on the test's databases, with the seeded world: yields (app, host, world)."""
    from tests.conftest import make_settings, reset_env, seed_world

    await reset_env(env)
    settings = make_settings(env["database_url"], env["redis_url"], **overrides)
    async with serve(settings) as (app, host), http(host) as client:
        yield app, host, await seed_world(app, client)


async def accepted_consult(app, world, body: dict) -> dict:
    """b-specialist on call (under the A→B agreement), a-clinician's consult, accepted by b-specialist."""
    await put_on_call(
        app.state.sessionmaker,
        org_id=world.orgs["B"],
        user_ids=[world.users["b-specialist"]],
        specialty=body["specialty"],
    )
    consult = (
        await world.client.post("/api/v1/consults", json=body, headers=await world.headers("a-clinician"))
    ).json()
    accepted = await world.client.post(
        f"/api/v1/consults/{consult['id']}/accept", headers=await world.headers("b-specialist")
    )
    assert accepted.status_code == 200, accepted.text
    return consult


@contextmanager
def cpu_hog(cores: int | None = None):
    """A busy loop on each core (by default all of them) while in the block: a loaded machine, on
    which the event loop of a server under test runs late."""
    import os
    import subprocess
    import sys

    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(cores or os.cpu_count() or 1)
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(10)
