"""The consult gauges, read at scrape time (api.metrics.on_scrape): two bounded queries, grouped by
the status and urgency enums, so the series are those enums' product whatever the table holds."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from api.metrics import CONSULTS, UNASSIGNED, UNASSIGNED_AGE
from consults.models import Consult, Status, Urgency


async def collect(state: Any) -> None:
    """Consults by status and urgency; the queue's depth and the age of its oldest consult."""
    async with state.sessionmaker() as session:
        counts = (
            await session.execute(
                select(col(Consult.status), col(Consult.urgency), func.count()).group_by(
                    col(Consult.status), col(Consult.urgency)
                )
            )
        ).all()
        queue, oldest = (
            await session.execute(
                select(func.count(), func.min(col(Consult.created_at))).where(
                    col(Consult.status) == Status.unassigned
                )
            )
        ).one()
    found = {(str(status), urgency): n for status, urgency, n in counts}
    for status in Status:
        for urgency in Urgency:
            CONSULTS.labels(status.value, urgency.value).set(found.get((status.value, urgency.value), 0))
    UNASSIGNED.set(queue)
    UNASSIGNED_AGE.set(_age(oldest) if oldest is not None else 0)


def _age(then: datetime | str) -> float:
    # SQLite answers min() of a datetime column as its stored text, without a zone (stored in UTC).
    moment = datetime.fromisoformat(then) if isinstance(then, str) else then
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return max(0.0, (datetime.now(UTC) - moment).total_seconds())
