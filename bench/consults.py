"""Consult created → offer delivered on a connected specialist's events socket (PostgreSQL + Redis).

A `liaison serve` node in its own process; this process sends consults at a steady rate and times,
for each, the POST until the matching `offer.created` arrives on the specialist's WebSocket. The
baseline, measured in the same run at the same rate, is the node's bare HTTP round trip (/healthz).
"""

import asyncio
import json
import time

import httpx
import websockets

from bench.common import BODY, PASSWORD, node_settings, percentiles, scratch_database, seed
from tests.live import Node

RATE, SECONDS, WARMUP = 50, 10, 25
WORKERS = int(__import__('os').environ.get('BENCH_WORKERS', '2'))


async def run() -> list[tuple[str, str, str, str]]:
    async with scratch_database() as url:
        users = await seed(url, specialists=3)
        settings = node_settings(url)
        node = await Node(settings, workers=WORKERS).start()
        try:
            return await _measure(node.host, users)
        finally:
            node.stop()


async def _measure(host: str, users: dict) -> list[tuple[str, str, str, str]]:
    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=10,
                                 limits=httpx.Limits(max_connections=100)) as client:
        tokens = {}
        for name in (users["clinician"], users["specialists"][0]):
            r = await client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
            tokens[name] = r.json()["access_token"]
        headers = {"Authorization": f"Bearer {tokens[users['clinician']]}"}
        async with websockets.connect(f"ws://{host}/api/v1/events", compression=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": tokens[users["specialists"][0]]}))
            await ws.recv()
            arrived: dict[str, float] = {}
            listener = asyncio.create_task(_listen(ws, arrived))
            sent = await _steady(RATE, SECONDS, lambda: _create(client, headers))
            await asyncio.sleep(1)
            listener.cancel()
        base = await _steady(RATE, SECONDS / 2, lambda: _health(client))
    created = [(cid, t0) for cid, t0 in sent[WARMUP:] if cid is not None]
    latencies = [(arrived[cid] - t0) * 1000 for cid, t0 in created if cid in arrived]
    lost, failed = len(created) - len(latencies), len(sent) - WARMUP - len(created)
    got, ref = percentiles(latencies or [float("nan")] * 2), percentiles([b for _, b in base[WARMUP:]])
    return [
        (f"consult → offer on socket, p50 ({RATE}/s)", f"{got['p50']:.1f} ms", f"{ref['p50']:.1f} ms /healthz",
         f"{got['p50'] / ref['p50']:.1f}×"),
        (f"consult → offer on socket, p90 ({RATE}/s)", f"{got['p90']:.1f} ms", f"{ref['p90']:.1f} ms /healthz",
         f"{got['p90'] / ref['p90']:.1f}×"),
        (f"consult → offer on socket, p99 ({RATE}/s)", f"{got['p99']:.1f} ms", f"{ref['p99']:.1f} ms /healthz",
         f"target ≤ 50 ms: {'met' if got['p99'] <= 50 else 'NOT met'}"),
        ("offers not delivered", str(lost), "-", f"of {len(created)}"),
        ("consults not created within 10 s", str(failed), "-", f"of {len(sent) - WARMUP}"),
    ]


async def _listen(ws, arrived: dict[str, float]) -> None:
    async for raw in ws:
        event = json.loads(raw)
        if event.get("event") == "offer.created":
            arrived.setdefault(event["consult_id"], time.perf_counter())


async def _create(client: httpx.AsyncClient, headers: dict) -> tuple[str | None, float]:
    """(the consult's id, or None if it was not created in time), when it was sent."""
    t0 = time.perf_counter()
    try:
        r = await client.post("/api/v1/consults", json=BODY, headers=headers)
    except httpx.TimeoutException:  # an overloaded machine: reported in the table, not a crash
        return None, t0
    return (r.json()["id"] if r.is_success else None), t0


async def _health(client: httpx.AsyncClient) -> tuple[None, float]:
    t0 = time.perf_counter()
    await client.get("/healthz")
    return None, (time.perf_counter() - t0) * 1000


async def _steady(rate: int, seconds: float, call) -> list:
    """Start `call` every 1/rate seconds (not waiting for answers), for `seconds`; gather the results."""
    start, tasks = time.perf_counter(), []
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(call()))
    return await asyncio.gather(*tasks)
