"""Consult created → offer delivered on a connected specialist's events socket (PostgreSQL + Redis).

One `liaison serve --workers 2` node in its own process (BENCH_WORKERS to change); this process
sends consults at a steady rate (open loop: a request every 1/rate s whatever the answers) and
times, for each, from sending the POST until the matching `offer.created` arrives on the
specialist's WebSocket.

1. After WARM_S s at half the rate (not counted), at RATE a second for SECONDS (the first WARMUP dropped): p50/p90/p99 against the node's bare
   HTTP round trip (/healthz) at the same rate in the same run, and the CPU each consult costs the
   node and its PostgreSQL backends.
2. A rate search: STEPS a second, STEP_S seconds each (the first STEP_WARM s dropped), stopping at
   the first step whose p99 is over TARGET_MS; a consult that was not created (non-201, timeout)
   or whose offer did not arrive counts as an infinite latency, so more than 1 % of failures fails
   the step. Reported: the highest rate that met the target and the p99 of the step after it.

The requests go through bench.http's lean client (about 0.2-0.4 ms of client CPU a request here,
against httpx's 2.3-2.8 ms: the client shares the two cores with the server); BENCH_CLIENT=httpx
runs the same load through one httpx client instead. Each step reports the client's own CPU and how
late it started requests against their schedule, so a client that cannot keep up is visible.

The org's escalation windows are an hour: no offer expires, and no escalation runs, during the
benchmark (that would be load of another kind)."""

import asyncio
import json
import math
import os
import time

import httpx
import orjson
import websockets

from bench.common import (
    BODY,
    NO_EXPIRY,
    PASSWORD,
    loadavg,
    ms,
    node_settings,
    percentiles,
    rank,
    scratch_database,
    seed,
)
from bench.http import Pool, Request
from bench.load import Phase, open_loop
from bench.nodes import CpuMeter, Node

RATE, SECONDS, WARMUP, WARM_S = 50, 10, 25, 2.0
STEPS = tuple(int(r) for r in os.environ.get("BENCH_STEPS", "25,50,75,100,150,200,300").split(","))
STEP_S, STEP_WARM, TARGET_MS = 6.0, 1.0, 50.0
TIMEOUT, GRACE, CONNECTIONS = 5.0, 3.0, 256
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
CLIENT = os.environ.get("BENCH_CLIENT", "lean")
Row = tuple[str, str, str, str]


async def run() -> list[Row]:
    async with scratch_database() as url:
        users = await seed(url, specialists=3, escalation_windows=NO_EXPIRY)
        node = await Node(node_settings(url), workers=WORKERS).start()
        try:
            return await _measure(node, url, users)
        finally:
            node.stop()


class Client:
    """POST /consults and GET /healthz through the lean pool (or httpx with BENCH_CLIENT=httpx)."""

    def __init__(self, host: str, token: str) -> None:
        self.host, self.token = host, token
        self.pool: Pool | None = None
        self.httpx: httpx.AsyncClient | None = None
        self._create = Request(
            "POST",
            "/api/v1/consults",
            host,
            headers={"Authorization": f"Bearer {token}"},
            body=json.dumps(BODY).encode(),
        )
        self._health = Request("GET", "/healthz", host)

    async def open(self) -> "Client":
        if CLIENT == "httpx":
            limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
            self.httpx = httpx.AsyncClient(base_url=f"http://{self.host}", timeout=TIMEOUT, limits=limits)
        else:
            self.pool = await Pool(self.host, CONNECTIONS).warm(64)
        return self

    async def close(self) -> None:
        if self.httpx:
            await self.httpx.aclose()
        if self.pool:
            self.pool.close()

    async def create(self) -> tuple[str | None, float, object]:
        """(the consult's id or None, when it was sent, 201 / another status / 'timeout' / 'error')."""
        t0 = time.perf_counter()
        try:
            if self.httpx:
                r = await self.httpx.post(
                    "/api/v1/consults", json=BODY, headers={"Authorization": f"Bearer {self.token}"}
                )
                status, body = r.status_code, r.content
            else:
                status, body = await self.pool.request(self._create, TIMEOUT)
        except (TimeoutError, httpx.TimeoutException):
            return None, t0, "timeout"
        except (ConnectionError, httpx.TransportError):
            return None, t0, "error"
        return (orjson.loads(body)["id"] if status == 201 else None), t0, status

    async def health(self) -> float:
        t0 = time.perf_counter()
        if self.httpx:
            await self.httpx.get("/healthz")
        else:
            await self.pool.request(self._health, TIMEOUT)
        return (time.perf_counter() - t0) * 1000


async def _measure(node: Node, url: str, users: dict) -> list[Row]:
    async with httpx.AsyncClient(base_url=f"http://{node.host}", timeout=10) as setup:
        tokens = {}
        for name in (users["clinician"], users["specialists"][0]):
            r = await setup.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
            tokens[name] = r.json()["access_token"]
    client = await Client(node.host, tokens[users["clinician"]]).open()
    meter = CpuMeter([node], url)
    try:
        async with websockets.connect(f"ws://{node.host}/api/v1/events", compression=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": tokens[users["specialists"][0]]}))
            await ws.recv()
            arrived: dict[str, float] = {}
            listener = asyncio.create_task(_listen(ws, arrived))
            await open_loop(RATE / 2, WARM_S, client.create)  # each worker's pool opened, statements prepared
            await asyncio.sleep(0.5)
            load = loadavg()
            await meter.start()
            sent = await open_loop(RATE, SECONDS, client.create)
            await _settle(sent, arrived)
            await meter.stop()
            per_consult = _cpu_per(meter, sent.results)
            base = await open_loop(RATE, SECONDS / 2, client.health)
            steps = await _search(client, node, url, arrived)
            listener.cancel()
    finally:
        await client.close()
    return _rows(sent, arrived, base, per_consult, load) + _search_rows(steps)


def _cpu_per(meter: CpuMeter, results: list) -> tuple[float, float]:
    created = sum(1 for cid, _, _ in results if cid is not None) or 1
    return meter.server * 1000 / created, meter.database * 1000 / created


def _rows(sent: Phase, arrived: dict, base: Phase, cpu: tuple[float, float], load: str) -> list[Row]:
    created = [(cid, t0) for cid, t0, _ in sent.results[WARMUP:] if cid is not None]
    latencies = [(arrived[cid] - t0) * 1000 for cid, t0 in created if cid in arrived]
    lost, failed = len(created) - len(latencies), len(sent.results) - WARMUP - len(created)
    got, ref = percentiles(latencies or [float("nan")] * 2), percentiles(base.results[WARMUP:])
    tag = f"({RATE}/s, {WORKERS} workers)"
    return [
        (
            f"consult → offer on socket, p50 {tag}",
            f"{got['p50']:.1f} ms",
            f"{ref['p50']:.1f} ms /healthz",
            f"{got['p50'] / ref['p50']:.1f}×",
        ),
        (
            f"consult → offer on socket, p90 {tag}",
            f"{got['p90']:.1f} ms",
            f"{ref['p90']:.1f} ms /healthz",
            f"{got['p90'] / ref['p90']:.1f}×",
        ),
        (
            f"consult → offer on socket, p99 {tag}",
            f"{got['p99']:.1f} ms",
            f"{ref['p99']:.1f} ms /healthz",
            f"target ≤ {TARGET_MS:.0f} ms: {'met' if got['p99'] <= TARGET_MS else 'NOT met'}",
        ),
        ("offers not delivered", str(lost), "-", f"of {len(created)}"),
        (
            f"consults not created within {TIMEOUT:.0f} s (non-201, timeouts)",
            str(failed),
            "-",
            f"of {len(sent.results) - WARMUP}",
        ),
        (
            f"CPU per consult at {RATE}/s: node / its PostgreSQL backends",
            f"{cpu[0]:.1f} / {cpu[1]:.1f} ms",
            "-",
            f"load average at start {load}; client {sent.client_ms_per_request():.2f} ms/req ({CLIENT})",
        ),
    ]


async def _listen(ws, arrived: dict[str, float]) -> None:
    async for raw in ws:
        now = time.perf_counter()
        event = orjson.loads(raw)
        if event.get("event") == "offer.created":
            arrived.setdefault(event["consult_id"], now)


async def _settle(phase: Phase, arrived: dict) -> None:
    """Wait (up to GRACE s) for the offers of every consult created in the phase."""
    ids = [cid for cid, _, _ in phase.results if cid is not None]
    deadline = time.perf_counter() + GRACE
    while time.perf_counter() < deadline and not all(cid in arrived for cid in ids):
        await asyncio.sleep(0.05)


async def _search(client: Client, node: Node, url: str, arrived: dict) -> list[dict]:
    steps = []
    for rate in STEPS:
        meter = CpuMeter([node], url)
        load = loadavg()
        await meter.start()
        phase = await open_loop(rate, STEP_S, client.create)
        await _settle(phase, arrived)
        await meter.stop()
        step = _step(rate, phase, arrived, meter, load)
        steps.append(step)
        if not step["ok"]:
            break
        await asyncio.sleep(0.5)
    return steps


def _step(rate: int, phase: Phase, arrived: dict, meter: CpuMeter, load: str) -> dict:
    kept = phase.results[int(rate * STEP_WARM) :]
    latencies, answers = [], {"non-201": 0, "timeout": 0, "error": 0, "lost": 0}
    for cid, t0, status in kept:
        if cid is None:
            answers["timeout" if status == "timeout" else "error" if status == "error" else "non-201"] += 1
            latencies.append(math.inf)
        elif cid not in arrived:
            answers["lost"] += 1
            latencies.append(math.inf)
        else:
            latencies.append((arrived[cid] - t0) * 1000)
    created = sum(1 for cid, _, _ in phase.results if cid is not None) or 1
    p99 = rank(latencies, 0.99)
    return {
        "rate": rate,
        "n": len(kept),
        "p50": rank(latencies, 0.5),
        "p99": p99,
        "ok": p99 <= TARGET_MS,
        "answers": answers,
        "offered": (len(phase.results) - 1) / phase.span if phase.span else 0.0,
        "lag_p99": rank(phase.lag_ms, 0.99),
        "client_ms": phase.client_ms_per_request(),
        "client_share": phase.client_share(),
        "node_ms": meter.server * 1000 / created,
        "pg_ms": meter.database * 1000 / created,
        "load": load,
    }


def _search_rows(steps: list[dict]) -> list[Row]:
    passed = [s for s in steps if s["ok"]]
    failed = next((s for s in steps if not s["ok"]), None)
    best = passed[-1]["rate"] if passed else 0
    after = (
        f"next step {failed['rate']}/s: p99 {ms(failed['p99'])}, {sum(failed['answers'].values())} failed"
        if failed
        else f"every step up to {steps[-1]['rate']}/s met it"
    )
    rows = [
        (
            f"consult → offer: highest steady rate with p99 ≤ {TARGET_MS:.0f} ms ({WORKERS} workers)",
            f"{best}/s" + (f" (p99 {ms(passed[-1]['p99'])})" if passed else ""),
            after,
            f"target ≥ 150/s: {'met' if best >= 150 else 'NOT met'}",
        )
    ]
    for s in steps:
        a = s["answers"]
        behind = s["offered"] < 0.97 * s["rate"]  # (a late start alone is the whole machine saturated)
        rows.append(
            (
                f"  step {s['rate']}/s: offer p50 / p99",
                f"{ms(s['p50'])} / {ms(s['p99'])}",
                f"{a['non-201']} non-201, {a['timeout']} timeouts, {a['error']} errors, {a['lost']} offers lost of {s['n']}",
                f"{'met' if s['ok'] else 'NOT met'}; CPU/consult node {s['node_ms']:.1f} + PG {s['pg_ms']:.1f} ms; "
                f"client {s['client_ms']:.2f} ms/req = {s['client_share']:.0%} of a core, start lag p99 "
                f"{s['lag_p99']:.1f} ms{' (CLIENT BEHIND)' if behind else ''}; load {s['load']}",
            )
        )
    return rows
