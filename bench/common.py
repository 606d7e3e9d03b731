"""Shared by the benchmarks: a scratch database, node settings, seeding, timing statistics, the table."""

import math
import os
import statistics
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg

from api.db import commit, make_engine, make_sessionmaker
from api.migrate import upgrade
from api.settings import Settings
from auth.models import User
from auth.passwords import Passwords
from orgs.models import Organization
from rosters.models import Roster, Shift, SpecialistProfile

PG = os.environ.get("LIAISON_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("LIAISON_BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
PASSWORD = "bench-password-1"
SECRET = "bench-secret-" + "x" * 40
NO_EXPIRY = {
    "emergent": 3600,
    "urgent": 3600,
    "routine": 4 * 3600,
}  # escalation windows no benchmark outlasts
BODY = {
    "specialty": "trauma-surgery",
    "urgency": "emergent",
    "mode": "live",
    "question": "bench",
    "patient_ref": "B-1",
    "languages": ["en"],
}  # the consult every benchmark creates


def node_settings(url: str, **overrides) -> Settings:
    """A benchmarked node's settings: the scratch database, the bench Redis, cheap password hashing."""
    return Settings(
        environment="test",
        database_url=url,
        redis_url=REDIS,
        jwt_secret=SECRET,
        argon2_time_cost=1,
        argon2_memory_kib=1024,
        **overrides,
    )


@asynccontextmanager
async def scratch_database():
    """A migrated PostgreSQL database of its own, dropped afterwards."""
    name = f"liaison_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG.replace("+asyncpg", ""))
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = PG.rsplit("/", 1)[0] + f"/{name}"
    try:
        await upgrade(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def seed(url: str, *, specialists: int, escalation_windows: dict | None = None) -> dict:
    """One org with a clinician and `specialists` specialists on call for trauma surgery (tier 1);
    `escalation_windows` (seconds by urgency) as the org's policy, e.g. so that no offer expires
    while a benchmark runs (the escalation that follows would be load of another kind)."""
    engine = make_engine(url)
    digest = await Passwords(time_cost=1, memory_kib=1024).hash(PASSWORD)
    now = datetime.now(UTC)
    async with make_sessionmaker(engine)() as session:
        org = Organization(
            name="Bench Field Hospital", kind="military", escalation_windows=escalation_windows
        )
        session.add(org)
        await session.flush()
        clinician = User(org_id=org.id, username="bench-clinician", roles=["clinician"], password_hash=digest)
        specs = [
            User(org_id=org.id, username=f"bench-spec-{i}", roles=["specialist"], password_hash=digest)
            for i in range(specialists)
        ]
        roster = Roster(org_id=org.id, specialty="trauma-surgery", name="Trauma")
        session.add_all([clinician, *specs, roster])
        await session.flush()
        for s in specs:
            session.add(
                SpecialistProfile(
                    user_id=s.id,
                    org_id=org.id,
                    specialties=["trauma-surgery"],
                    languages=["en"],
                    max_concurrent=10,
                )
            )
            session.add(
                Shift(
                    roster_id=roster.id,
                    org_id=org.id,
                    specialist_id=s.id,
                    tier=1,
                    starts_at=now - timedelta(hours=1),
                    ends_at=now + timedelta(hours=4),
                )
            )
        await commit(session)
    await engine.dispose()
    return {"clinician": "bench-clinician", "specialists": [s.username for s in specs], "org_id": str(org.id)}


def loadavg() -> str:
    """The machine's 1/5/15-minute load averages (as `uptime` prints them): other work shares the cores."""
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def rank(samples: list[float], q: float) -> float:
    """The q-quantile (0 < q < 1) by nearest rank: a failed request counted as +inf stays +inf."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] if ordered else math.nan


def ms(value: float) -> str:
    return "∞ (failures)" if math.isinf(value) else f"{value:.1f} ms"


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": statistics.median(ordered), "p90": q[89], "p99": q[98], "n": len(ordered)}


def table(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("benchmark", "result", "baseline (same run)", "ratio / target")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]

    def line(r):
        return " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=False))

    return "\n".join([line(header), "-+-".join("-" * w for w in widths), *map(line, rows)])
