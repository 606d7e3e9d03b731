"""Where a request's CPU goes on the server: `python -m bench.profile create|read [RATE] [SECONDS]`.

Not part of `make bench`. A node (one uvicorn worker, as `liaison serve` runs it: uvloop, httptools)
runs in a process of its own with a CPU-time sampler inside it; this process sends a steady load of
one kind (consults created, or audited reads of the requester's consults) through bench.http, with a
specialist's events socket connected as in bench.consults, and prints the node's CPU per request
split by what it was doing.

Why not py-spy or pyinstrument alone: SQLAlchemy's async layer runs the ORM in greenlets, and both
show a greenlet's frames as a stack of its own, cut off from the coroutine that called it (so the
ORM work of a query is not attributed to the audit insert or the routing query that made it).
The sampler here (SIGPROF on ITIMER_PROF: one sample per INTERVAL of the process's CPU time)
stitches each greenlet's stack onto its parent's and tags the sample with the asyncio task it ran
in. CPU spent in C without Python frames (uvloop's I/O, asyncpg's Cython protocol) is charged to the
Python code that runs next — usually the code consuming that I/O. py-spy gives the unstitched view
(`py-spy record -p PID -f raw`), useful as a cross-check of the totals.

It also counts SQL statements and pool checkouts per request, by task (request vs event log vs
sealer), with SQLAlchemy's engine events."""

import asyncio
import collections
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

INTERVAL = 0.0005  # seconds of CPU between samples
Row = tuple[str, str, str, str]


# --- inside the profiled node ---------------------------------------------------------------------


class Sampler:
    def __init__(self) -> None:
        self.stacks: collections.Counter = collections.Counter()
        self.sql: collections.Counter = collections.Counter()
        self.checkouts: collections.Counter = collections.Counter()
        self.on = False
        self.cpu0 = 0.0
        self.cpu = 0.0

    def start(self, *_) -> None:
        import greenlet

        self._greenlet = greenlet
        self.stacks.clear(), self.sql.clear(), self.checkouts.clear()
        self.on, self.cpu0 = True, time.process_time()
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, INTERVAL, INTERVAL)

    def stop(self, *_) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        self.on, self.cpu = False, time.process_time() - self.cpu0
        out = os.environ["BENCH_PROFILE_OUT"]
        names: dict = {}
        stacks = [
            [task, [names.setdefault(c, _name(c)) for c in reversed(codes)], n]
            for (task, codes), n in self.stacks.items()
        ]
        sql: collections.Counter = collections.Counter()
        for (task, statement), n in self.sql.items():
            sql[(task, _sql_kind(statement))] += n
        Path(out + ".tmp").write_text(
            json.dumps(
                {
                    "interval": INTERVAL,
                    "cpu": self.cpu,
                    "stacks": stacks,
                    "sql": [[task, kind, n] for (task, kind), n in sql.items()],
                    "checkouts": [[task, n] for task, n in self.checkouts.items()],
                }
            )
        )
        os.replace(out + ".tmp", out)

    def _sample(self, _signum, frame) -> None:
        codes, g, f = [], self._greenlet.getcurrent(), frame
        while True:
            while f is not None:
                codes.append(f.f_code)
                f = f.f_back
            g = g.parent
            if g is None:
                break
            f = g.gr_frame
        self.stacks[(_task(), tuple(codes))] += 1

    def on_sql(self, conn, cursor, statement, *_args) -> None:
        if self.on:
            self.sql[(_task(), statement)] += 1

    def on_checkout(self, *_args) -> None:
        if self.on:
            self.checkouts[_task()] += 1


def _name(code) -> str:
    return f"{_short(code.co_filename)}:{code.co_qualname}"


def _task() -> str:
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return "-"
    if task is None:
        return "-"
    name = task.get_name()
    return name if not name.startswith("Task-") else "request"


def _short(path: str) -> str:
    """site-packages/x/y.py → x/y.py, the standard library's → stdlib/…, Liaison's relative to the repo."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    stdlib = re.match(r".*/lib/python3\.\d+/(.*)", path)
    if stdlib:
        return "stdlib/" + stdlib.group(1)
    return path.replace(str(Path(__file__).resolve().parent.parent) + "/", "")


def _sql_kind(statement: str) -> str:
    s = " ".join(statement.split()).upper()
    for table in (
        "AUDIT_EVENTS",
        "AUDIT_HEAD",
        "EVENT_CURSOR",
        "EVENTS",
        "CONSULTS",
        "OFFERS",
        "ESCALATION_STEPS",
        "USERS",
        "AGREEMENTS",
        "SHIFTS",
    ):
        if table in s:
            break
    else:
        table = ""
    verb = s.split(" ", 1)[0]
    if verb == "SELECT" and "FOR UPDATE" in s:
        verb = "SELECT … FOR UPDATE"
    return f"{verb} {table.lower()}".strip()


def serve(port: int) -> None:
    import uvicorn
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    from api.settings import get_settings
    from liaison.app import create_app, uvicorn_options

    sampler = Sampler()
    event.listen(Engine, "before_cursor_execute", sampler.on_sql)
    event.listen(Pool, "checkout", sampler.on_checkout)
    signal.signal(signal.SIGUSR1, sampler.start)
    signal.signal(signal.SIGUSR2, sampler.stop)
    settings = get_settings()
    uvicorn.run(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", **uvicorn_options(settings)
    )


# --- the driver -----------------------------------------------------------------------------------

# What a sample was doing: the first rule (in this order) one of whose markers is in its stack.
RULES = [
    ("event log: sequence (sequencer txn)", ("events/log.py:sequence",)),
    ("event log: drain (read + deliver)", ("events/log.py:EventLog._drain",)),
    ("event log: other (wake, ring)", ("events/log.py:", "events/bus.py:RedisWake")),
    ("audit sealer", ("audit/sealer.py:",)),
    ("escalation worker poll", ("consults/worker.py:",)),
    ("webhook worker (feed check, claim)", ("webhooks/worker.py:",)),
    ("events socket: send", ("events/router.py:",)),
    ("JWT check (python-jose)", ("auth/tokens.py:verify", "auth/identity.py:_peek_issuer")),
    ("argon2", ("argon2/",)),
    ("authenticate: user+session query", ("auth/identity.py:",)),
    ("routing: partner_orgs + eligible queries", ("consults/routing.py:eligible",)),
    ("offers + events staged (TriageOut dump)", ("consults/notify.py:", "consults/escalation.py:_offer")),
    ("escalation advance (other)", ("consults/escalation.py:",)),
    (
        "autoflush before the audit INSERT: offers, step, 5 events, consult UPDATE",
        (("audit/service.py:record", "Session._autoflush"),),
    ),
    ("audit INSERT", ("audit/service.py:record",)),
    ("consult INSERT (its explicit flush)", (("consults/service.py:create", "AsyncSession.flush"),)),
    ("consult body hash + construct", ("consults/service.py:create",)),
    ("consult load + access check", ("consults/access.py:",)),
    ("commit (flush + COMMIT + hooks)", ("api/db.py:UnitOfWork._commit", "api/db.py:commit")),
    (
        "session close / rollback",
        (
            "sqlalchemy/ext/asyncio/session.py:AsyncSession.close",
            "sqlalchemy/ext/asyncio/session.py:AsyncSession.__aexit__",
        ),
    ),
    (
        "pool checkout + BEGIN",
        ("sqlalchemy/pool/", "_async_ping", "api/db.py:get_session", "asyncpg/transaction.py"),
    ),
    (
        "response: ConsultOut + clocks + FastAPI serialize",
        (
            "consults/router.py:full",
            "fastapi/routing.py:serialize_response",
            "fastapi/routing.py:_prepare_response_content",
            "fastapi/encoders.py",
        ),
    ),
    ("request body parse + validation + deps", ("fastapi/dependencies/",)),
    ("endpoint (other)", ("consults/router.py:", "consults/service.py:")),
    ("metrics middleware (prometheus)", ("prometheus_client/",)),
    (
        "HTTP: uvicorn + starlette + fastapi + middleware",
        ("uvicorn/", "starlette/", "fastapi/", "api/middleware.py"),
    ),
]
LAYERS = [
    ("event loop (uvloop, C: I/O, callbacks)", ("stdlib/asyncio/runners.py:Runner.run",)),
    ("python-jose", ("jose/",)),
    ("pydantic", ("pydantic/", "pydantic_core/")),
    ("SQLAlchemy (ORM + core)", ("sqlalchemy/",)),
    ("SQLModel", ("sqlmodel/",)),
    ("anyio threadpool (sync dependencies)", ("anyio/",)),
    ("asyncpg", ("asyncpg/",)),
    ("redis-py", ("redis/",)),
    ("json", ("json/",)),
    ("starlette + fastapi", ("starlette/", "fastapi/")),
    ("uvicorn", ("uvicorn/",)),
    ("prometheus_client", ("prometheus_client/",)),
]


def _has(stack: list[str], marker) -> bool:
    """A marker is a substring of some frame; a tuple of them must all be there."""
    if isinstance(marker, tuple):
        return all(_has(stack, m) for m in marker)
    return any(marker in frame for frame in stack)


def classify(stack: list[str], rules) -> str:
    for name, markers in rules:
        if any(_has(stack, m) for m in markers):
            return name
    return "other (event loop, asyncio)"


def layer(stack: list[str]) -> str:
    """The library the sample was in: the innermost frame that belongs to one."""
    for frame in reversed(stack):
        for name, markers in LAYERS:
            if any(frame.startswith(m) for m in markers):
                return name
        if not frame.startswith(("stdlib/", "<", "greenlet")):
            return "Liaison's own code" if not frame.startswith("bench/") else "the profiler itself"
    return "asyncio + stdlib"


def report(profile: dict, requests: int, top: int = 0) -> list[tuple[str, float, float]]:
    """[(component, % of CPU, ms per request)], from the dump of a profiled node."""
    per_sample_ms = profile["cpu"] * 1000 / max(sum(n for *_, n in profile["stacks"]), 1)
    counts: collections.Counter = collections.Counter()
    for _task, stack, n in profile["stacks"]:
        counts[classify(stack, RULES)] += n
    total = sum(counts.values())
    return [
        (name, n * 100 / total, n * per_sample_ms / requests) for name, n in counts.most_common(top or None)
    ]


def layers(profile: dict, requests: int) -> list[tuple[str, float, float]]:
    per_sample_ms = profile["cpu"] * 1000 / max(sum(n for *_, n in profile["stacks"]), 1)
    counts: collections.Counter = collections.Counter()
    for _task, stack, n in profile["stacks"]:
        counts[layer(stack)] += n
    total = sum(counts.values())
    return [(name, n * 100 / total, n * per_sample_ms / requests) for name, n in counts.most_common()]


async def drive(kind: str, rate: float, seconds: float) -> dict:
    import httpx
    import websockets

    from bench.common import BODY, NO_EXPIRY, PASSWORD, node_settings, scratch_database, seed
    from bench.http import Pool, Request
    from bench.load import open_loop
    from bench.nodes import Node

    out = f"/tmp/bench-profile-{os.getpid()}.json"
    async with scratch_database() as url:
        users = await seed(url, specialists=3, escalation_windows=NO_EXPIRY)
        node = Node(
            node_settings(url),
            env={"BENCH_PROFILE_OUT": out},
            command=[sys.executable, "-m", "bench.profile", "--serve"],
        )
        await node.start()
        try:
            async with httpx.AsyncClient(base_url=f"http://{node.host}", timeout=10) as c:
                tok = {
                    n: (
                        await c.post("/api/v1/auth/login", json={"username": n, "password": PASSWORD})
                    ).json()["access_token"]
                    for n in (users["clinician"], users["specialists"][0])
                }
                auth = {"Authorization": f"Bearer {tok[users['clinician']]}"}
                ids = [
                    (await c.post("/api/v1/consults", json=BODY, headers=auth)).json()["id"]
                    for _ in range(20)
                ]
            pool = await Pool(node.host, 64).warm(16)
            create = Request(
                "POST", "/api/v1/consults", node.host, headers=auth, body=json.dumps(BODY).encode()
            )
            reads = [Request("GET", f"/api/v1/consults/{i}", node.host, headers=auth) for i in ids]
            turn = iter(range(10**9))

            async def one() -> int:
                req = create if kind == "create" else reads[next(turn) % len(reads)]
                return (await pool.request(req))[0]

            async with websockets.connect(f"ws://{node.host}/api/v1/events", compression=None) as ws:
                await ws.send(json.dumps({"type": "auth", "token": tok[users["specialists"][0]]}))
                await ws.recv()
                sink = asyncio.create_task(_drain(ws))
                await open_loop(rate, 2, one)  # warm: caches, pool, statements prepared
                await asyncio.sleep(0.5)
                os.kill(node.proc.pid, signal.SIGUSR1)
                phase = await open_loop(rate, seconds, one)
                await asyncio.sleep(1.2)  # the event log and the sealer's share of this load
                os.kill(node.proc.pid, signal.SIGUSR2)
                for _ in range(100):
                    if os.path.exists(out):
                        break
                    await asyncio.sleep(0.05)
                sink.cancel()
            pool.close()
        finally:
            node.stop()
    profile = json.loads(Path(out).read_text())
    os.unlink(out)
    profile["requests"] = len(phase.results)
    profile["statuses"] = dict(collections.Counter(phase.results))
    return profile


async def _drain(ws) -> None:
    async for _ in ws:
        pass


def print_profile(kind: str, profile: dict) -> None:
    n = profile["requests"]
    print(
        f"\n{kind}: {n} requests {profile['statuses']}, node CPU {profile['cpu'] * 1000 / n:.2f} ms per request "
        f"(sampled every {profile['interval'] * 1000:.1f} ms of CPU)"
    )
    print("  by component:")
    for name, pct, ms in report(profile, n):
        print(f"    {pct:5.1f} %  {ms:6.2f} ms  {name}")
    print("  by library (innermost frame):")
    for name, pct, ms in layers(profile, n):
        print(f"    {pct:5.1f} %  {ms:6.2f} ms  {name}")
    print("  SQL statements per request, by task:")
    for task, what, count in sorted(profile["sql"], key=lambda r: (r[0], -r[2])):
        print(f"    {count / n:6.2f}  {task:14s} {what}")
    if os.environ.get("BENCH_PROFILE_DETAIL"):
        _detail(profile, n)
    print("  pool checkouts per request:", ", ".join(f"{t} {c / n:.2f}" for t, c in profile["checkouts"]))


def _detail(profile: dict, n: int, per: int = 8) -> None:
    """The frames each component spends most in (innermost frame, and the caller of a library's)."""
    per_sample_ms = profile["cpu"] * 1000 / max(sum(c for *_, c in profile["stacks"]), 1)
    by: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for _task, stack, c in profile["stacks"]:
        own = next(
            (
                f
                for f in reversed(stack)
                if not f.startswith(
                    ("sqlalchemy/", "stdlib/", "asyncpg/", "pydantic", "<", "greenlet", "sqlmodel/")
                )
            ),
            "?",
        )
        by[classify(stack, RULES)][f"{stack[-1]}  <- {own}"] += c
    for name, frames in sorted(by.items(), key=lambda kv: -sum(kv[1].values())):
        print(f"  [{name}]")
        for frame, c in frames.most_common(per):
            print(f"      {c * per_sample_ms / n:6.3f} ms  {frame}")


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(int(sys.argv[sys.argv.index("--port") + 1]))
        return
    kind = sys.argv[1] if len(sys.argv) > 1 else "create"
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 20
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10
    profile = asyncio.run(drive(kind, rate, seconds))
    print_profile(kind, profile)
    if os.environ.get("BENCH_PROFILE_DUMP"):
        Path(os.environ["BENCH_PROFILE_DUMP"]).write_text(json.dumps(profile))


if __name__ == "__main__":
    main()
