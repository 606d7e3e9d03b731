"""Webhook delivery latency: a consult's event stored → the signed `consult.created` at a receiver
(PostgreSQL + Redis), against the same events' latency to a specialist's events socket.

One `liaison serve --workers 2` node in its own process (BENCH_WORKERS to change) with its webhook
workers; this process creates consults at each of RATES a second (BENCH_WEBHOOK_RATES) for SECONDS
(open loop, the first WARMUP of each step dropped) and runs a bare HTTP receiver on loopback
(asyncio streams: no framework's cost in the figure). Latency is measured from the event's stored
time (the payload's `timestamp`, the `at` of the socket's `offer.created`: both stamped when the
event is staged in the consult's transaction, on this machine's clock) to its arrival. Every
delivery is checked with the `standardwebhooks` library after the run, off the clock."""

import asyncio
import json
import os
import time
from datetime import datetime

import httpx
import orjson
import websockets
from standardwebhooks.webhooks import Webhook

from api.db import commit, make_engine, make_sessionmaker
from bench.common import BODY, NO_EXPIRY, PASSWORD, node_settings, percentiles, scratch_database, seed
from bench.http import Pool, Request
from bench.load import open_loop
from bench.nodes import Node
from webhooks.models import WebhookEndpoint
from webhooks.signing import new_secret

SECONDS, WARMUP, GRACE = 10, 25, 10.0
# The figure is at 50/s; the lower steps show where the node still keeps up.
RATES = [int(r) for r in os.environ.get("BENCH_WEBHOOK_RATES", "25,50").split(",")]
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
Row = tuple[str, str, str, str]


class Receiver:
    """HTTP/1.1 keep-alive POSTs answered 204; each (arrival, headers, body) kept."""

    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, str], bytes]] = []
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> "Receiver":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/hook"
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")[1:]
                headers = {
                    k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.got.append((time.time(), headers, body))
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def run() -> list[Row]:
    async with scratch_database() as url:
        users = await seed(url, specialists=3, escalation_windows=NO_EXPIRY)
        receiver = await Receiver().start()
        secret = await _endpoint(url, users["org_id"], receiver.url)
        settings = node_settings(url, webhooks_allow_private_addresses=True)
        node = await Node(settings, workers=WORKERS).start()
        try:
            return await _measure(node, users, receiver, secret)
        finally:
            node.stop()
            receiver.close()


async def _endpoint(url: str, org_id: str, receiver_url: str) -> str:
    engine = make_engine(url)
    secret = new_secret()
    async with make_sessionmaker(engine)() as session:
        import uuid

        session.add(
            WebhookEndpoint(
                org_id=uuid.UUID(org_id), url=receiver_url, event_types=["consult.created"], secret=secret
            )
        )
        await commit(session)
    await engine.dispose()
    return secret


async def _measure(node: Node, users: dict, receiver: Receiver, secret: str) -> list[Row]:
    async with httpx.AsyncClient(base_url=f"http://{node.host}", timeout=10) as setup:
        tokens = {}
        for name in (users["clinician"], users["specialists"][0]):
            r = await setup.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
            tokens[name] = r.json()["access_token"]
    pool = await Pool(node.host, 256).warm(64)
    create = Request(
        "POST",
        "/api/v1/consults",
        node.host,
        headers={"Authorization": f"Bearer {tokens[users['clinician']]}"},
        body=json.dumps(BODY).encode(),
    )

    async def one() -> str | None:
        try:
            status, body = await pool.request(create, 5.0)
        except (TimeoutError, ConnectionError):
            return None
        return orjson.loads(body)["id"] if status == 201 else None

    socket: dict[str, float] = {}
    rows: list[Row] = []
    try:
        async with websockets.connect(f"ws://{node.host}/api/v1/events", compression=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": tokens[users["specialists"][0]]}))
            await ws.recv()
            listener = asyncio.create_task(_listen(ws, socket))
            for rate in RATES:
                heard = len(receiver.got)
                phase = await open_loop(rate, SECONDS, one)
                created = [cid for cid in phase.results[WARMUP:] if cid is not None]
                deadline = time.time() + GRACE
                while time.time() < deadline and len(receiver.got) - heard < len(phase.results):
                    await asyncio.sleep(0.1)
                if listener.done():
                    listener.result()  # a listener that died says why
                rows += _rows(receiver, socket, created, secret, rate)
            listener.cancel()
    finally:
        pool.close()
    return rows


async def _listen(ws, latencies: dict[str, float]) -> None:
    async for raw in ws:
        now, event = time.time(), orjson.loads(raw)
        if event.get("event") == "offer.created":
            latencies.setdefault(
                event["consult_id"], (now - datetime.fromisoformat(event["at"]).timestamp()) * 1000
            )


def _rows(
    receiver: Receiver, socket: dict[str, float], created: list[str], secret: str, rate: int
) -> list[Row]:
    hook, wh, bad = {}, Webhook(secret), 0
    for at, headers, body in receiver.got:
        try:
            payload = wh.verify(body, headers)
        except Exception:
            bad += 1
            continue
        stored = datetime.fromisoformat(payload["timestamp"]).timestamp()
        hook.setdefault(payload["data"]["consult_id"], (at - stored) * 1000)
    got = percentiles([hook[c] for c in created if c in hook] or [float("nan")] * 2)
    ref = percentiles([socket[c] for c in created if c in socket] or [float("nan")] * 2)
    tag = f"({rate}/s, {WORKERS} workers)"
    return [
        (
            f"event stored → webhook received, p50 {tag}",
            f"{got['p50']:.1f} ms",
            f"{ref['p50']:.1f} ms on the socket",
            f"{got['p50'] / ref['p50']:.1f}×",
        ),
        (
            f"event stored → webhook received, p99 {tag}",
            f"{got['p99']:.1f} ms",
            f"{ref['p99']:.1f} ms on the socket",
            f"{got['p99'] / ref['p99']:.1f}×",
        ),
        (
            f"webhooks not received (or not verifying) at {rate}/s",
            str(sum(c not in hook for c in created) + bad),
            "-",
            f"of {len(created)}",
        ),
    ]
