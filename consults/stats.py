"""Response-time clocks: per consult, and median / 90th percentile by org, specialty or urgency."""

import statistics
from collections import defaultdict
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit
from audit.service import record
from auth.principal import Actor
from consults.models import Consult
from consults.schemas import Clocks, StatRow

INTERVALS = ("to_first_offer", "to_accept", "to_first_response", "to_completion")
_MARKS = {
    "to_first_offer": "first_offered_at",
    "to_accept": "accepted_at",
    "to_first_response": "first_response_at",
    "to_completion": "completed_at",
}


def clocks(consult: Consult) -> Clocks:
    """Seconds from creation to each milestone reached so far."""

    def since_created(mark: datetime | None) -> float | None:
        return round((mark - consult.created_at).total_seconds(), 3) if mark else None

    return Clocks(**{name: since_created(getattr(consult, attr)) for name, attr in _MARKS.items()})


async def response_times(
    session: AsyncSession, *, actor: Actor, group_by: str, since: datetime | None, until: datetime | None
) -> list[StatRow]:
    """Consults the caller's org requested or served, grouped, with each interval's median and p90."""
    query = select(Consult).where(
        or_(col(Consult.org_id) == actor.org_id, col(Consult.assigned_org_id) == actor.org_id)
    )
    if since:
        query = query.where(col(Consult.created_at) >= since)
    if until:
        query = query.where(col(Consult.created_at) < until)
    groups: dict[str, list[Clocks]] = defaultdict(list)
    for consult in (await session.execute(query)).scalars():
        key = str(consult.org_id) if group_by == "org" else getattr(consult, group_by)
        groups[key].append(clocks(consult))
    await record(session, actor=actor, action="stats.read", org_id=actor.org_id, resource_type="consult")
    await commit(session)
    return [_row(key, rows) for key, rows in sorted(groups.items())]


def _row(key: str, rows: list[Clocks]) -> StatRow:
    median, p90 = {}, {}
    for name in INTERVALS:
        values = sorted(v for r in rows if (v := getattr(r, name)) is not None)
        median[name] = round(statistics.median(values), 3) if values else None
        p90[name] = round(_percentile(values, 0.9), 3) if values else None
    return StatRow(group=key, count=len(rows), median=median, p90=p90)


def _percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (values sorted, non-empty)."""
    pos = (len(values) - 1) * q
    low = int(pos)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (pos - low)
