"""Audited reads: `GET /api/v1/consults/{id}` (each one a row in the audit trail) on one node and on two.

The requester reads its own consults (CONSULTS of them, in turn): a token check, the consult, the
audit INSERT, a commit. CONCURRENCY clients in a closed loop (each sends its next read as soon as
the last is answered) for SECONDS after a WARM-up second; with several nodes the client spreads
the reads over them in turn, as clients behind no proxy would. Reported per layout: reads/s,
p50 / p99, errors (non-200, timeouts), and the CPU each read costs the nodes and their PostgreSQL
backends, so that whether a second node adds capacity on this machine can be read off directly.

Layouts, on a 2-core machine: one node with one worker (one core for Python, the other left to
PostgreSQL and the client); one node with two workers (`liaison serve --workers 2`, the usual
production shape: one process per core); two nodes of one worker each (the same two processes, but
as separate nodes: what "a second node" means here). Two nodes of two workers each would put four
Python processes and PostgreSQL on two cores: only more contention, not more capacity.

Then, as issue #9 measured it, reads at OPEN_RATE a second (open loop) on the two-worker node."""

import asyncio
import time

import httpx

from bench.common import (
    BODY,
    NO_EXPIRY,
    PASSWORD,
    loadavg,
    node_settings,
    percentiles,
    rank,
    scratch_database,
    seed,
)
from bench.http import Pool, Request
from bench.load import Phase, closed_loop, open_loop
from bench.nodes import CpuMeter, Node

CONSULTS, CONCURRENCY, SECONDS, WARM, TIMEOUT = 20, 16, 8.0, 1.0, 10.0
OPEN_RATE, OPEN_SECONDS = 100, 6.0
LAYOUTS = (("1 node × 1 worker", (1,)), ("1 node × 2 workers", (2,)), ("2 nodes × 1 worker", (1, 1)))
Row = tuple[str, str, str, str]


async def run() -> list[Row]:
    async with scratch_database() as url:
        users = await seed(url, specialists=3, escalation_windows=NO_EXPIRY)
        settings = node_settings(url)
        results = []
        for name, workers in LAYOUTS:
            nodes = [Node(settings, workers=w) for w in workers]
            try:
                await asyncio.gather(*(n.start() for n in nodes))
                if not results:
                    ids, token = await _prepare(nodes[0].host, users)
                results.append((name, await _closed(nodes, url, ids, token)))
                if workers == (2,):
                    open_result = await _open(nodes, url, ids, token)
            finally:
                for n in nodes:
                    n.stop()
    return _rows(results, open_result)


async def _prepare(host: str, users: dict) -> tuple[list[str], str]:
    """Log the requester in and create the consults it will read."""
    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=10) as c:
        r = await c.post("/api/v1/auth/login", json={"username": users["clinician"], "password": PASSWORD})
        token = r.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        ids = [
            (await c.post("/api/v1/consults", json=BODY, headers=auth)).json()["id"] for _ in range(CONSULTS)
        ]
    return ids, token


class Reader:
    """Reads through one lean pool per node, node after node."""

    def __init__(self, nodes: list[Node], ids: list[str], token: str) -> None:
        auth = {"Authorization": f"Bearer {token}"}
        self.nodes = nodes
        self.requests = [
            [Request("GET", f"/api/v1/consults/{i}", n.host, headers=auth) for i in ids] for n in nodes
        ]
        self.pools: list[Pool] = []
        self.turn = 0

    async def open(self, connections: int) -> "Reader":
        self.pools = [await Pool(n.host, connections).warm(min(connections, 64)) for n in self.nodes]
        return self

    def close(self) -> None:
        for p in self.pools:
            p.close()

    async def read(self, *_) -> tuple[float, object]:
        """(latency in ms, the status or 'timeout' / 'error')."""
        k = self.turn = self.turn + 1
        node = k % len(self.pools)
        req = self.requests[node][k // len(self.pools) % len(self.requests[node])]
        t0 = time.perf_counter()
        try:
            status, _ = await self.pools[node].request(req, TIMEOUT)
        except TimeoutError:
            status = "timeout"
        except ConnectionError:
            status = "error"
        return (time.perf_counter() - t0) * 1000, status


async def _closed(nodes: list[Node], url: str, ids: list[str], token: str) -> dict:
    reader = await Reader(nodes, ids, token).open(CONCURRENCY)
    meter = CpuMeter(nodes, url)
    load = loadavg()
    try:
        await closed_loop(CONCURRENCY, 1.0, reader.read, warmup=0)  # warm every worker's caches and pool
        phase = await closed_loop(CONCURRENCY, SECONDS, reader.read, warmup=WARM, on_measure=meter.start)
        await meter.stop()
    finally:
        reader.close()
    return _summary(phase, meter, load)


async def _open(nodes: list[Node], url: str, ids: list[str], token: str) -> dict:
    reader = await Reader(nodes, ids, token).open(256)
    meter = CpuMeter(nodes, url)
    load = loadavg()
    try:
        await meter.start()
        phase = await open_loop(OPEN_RATE, OPEN_SECONDS, reader.read)
        await meter.stop()
    finally:
        reader.close()
    return _summary(phase, meter, load)


def _summary(phase: Phase, meter: CpuMeter, load: str) -> dict:
    ok = [ms for ms, status in phase.results if status == 200]
    n = len(phase.results) or 1
    failed = len(phase.results) - len(ok)
    p = percentiles(ok) if len(ok) >= 2 else {"p50": float("nan"), "p99": float("nan")}
    return {
        "rate": len(ok) / phase.wall,
        "p50": p["p50"],
        "p99": p["p99"],
        "failed": failed,
        "n": len(phase.results),
        "node_ms": meter.server * 1000 / n,
        "pg_ms": meter.database * 1000 / n,
        "client_ms": phase.client_ms_per_request(),
        "client_share": phase.client_share(),
        "load": load,
        "lag_p99": rank(phase.lag_ms, 0.99) if phase.lag_ms else None,
    }


def _rows(results: list[tuple[str, dict]], open_result: dict) -> list[Row]:
    one = results[0][1]["rate"]
    rows = []
    for name, r in results:
        rows.append(
            (
                f"audited reads, {name} ({CONCURRENCY} clients, closed loop)",
                f"{r['rate']:.0f} reads/s, p50 {r['p50']:.1f} / p99 {r['p99']:.1f} ms",
                f"{r['failed']} failed of {r['n']}",
                f"{r['rate'] / one:.2f}× 1 node × 1 worker; CPU/read node {r['node_ms']:.1f} + PG {r['pg_ms']:.1f} ms; "
                f"client {r['client_ms']:.2f} ms/req ({r['client_share']:.0%} of a core); load {r['load']}",
            )
        )
    r = open_result
    rows.append(
        (
            f"audited reads at {OPEN_RATE}/s (open loop), 1 node × 2 workers",
            f"p50 {r['p50']:.1f} / p99 {r['p99']:.1f} ms",
            f"{r['failed']} failed of {r['n']}",
            f"issue #9 (old code): p50 4.0 s, p99 8.7 s; CPU/read node {r['node_ms']:.1f} + PG {r['pg_ms']:.1f} ms; "
            f"start lag p99 {r['lag_p99']:.1f} ms; load {r['load']}",
        )
    )
    return rows
