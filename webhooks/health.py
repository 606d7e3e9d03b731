"""An endpoint's run of failures: reset by a delivery, and past the limit (so many attempts in a row,
or failing for so many hours) the endpoint is disabled, audited, and its org admins told on the
events socket (`webhook.disabled`)."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.settings import Settings
from audit.service import record
from auth.models import User
from events.service import emit
from webhooks.models import WebhookEndpoint


@dataclass(frozen=True)
class System:
    """Who the trail names for what the delivery worker decides by itself."""

    kind: str = "system"
    id: None = None
    org_id: None = None
    request_id: str | None = None
    client_addr: str | None = None
    is_platform_admin: bool = False


SYSTEM = System()


async def succeeded(session: AsyncSession, endpoint_id: uuid.UUID) -> None:
    await session.execute(
        update(WebhookEndpoint)
        .where(col(WebhookEndpoint.id) == endpoint_id)
        .values(consecutive_failures=0, failing_since=None)
    )


async def failed(session: AsyncSession, endpoint_id: uuid.UUID, *, now: datetime, settings: Settings) -> None:
    """Count the failure (locking the row: concurrent attempts count one by one); disable past the limit."""
    endpoint = (
        await session.execute(
            select(WebhookEndpoint).where(col(WebhookEndpoint.id) == endpoint_id).with_for_update()
        )
    ).scalar_one_or_none()
    if endpoint is None:
        return
    endpoint.consecutive_failures += 1
    endpoint.failing_since = endpoint.failing_since or now
    too_many = endpoint.consecutive_failures >= settings.webhooks_disable_after_failures
    too_long = now - endpoint.failing_since >= timedelta(hours=settings.webhooks_disable_after_hours)
    if endpoint.enabled and (too_many or too_long):
        run = f"{endpoint.consecutive_failures} attempts in a row"
        since = f"no success since {endpoint.failing_since.isoformat(timespec='seconds')}"
        await _disable(session, endpoint, now=now, reason=f"failing: {run if too_many else since}")


async def _disable(session: AsyncSession, endpoint: WebhookEndpoint, *, now: datetime, reason: str) -> None:
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    endpoint.updated_at = now
    await record(
        session,
        actor=SYSTEM,
        action="webhook.disable",
        org_id=endpoint.org_id,
        resource_type="webhook",
        resource_id=endpoint.id,
        reason=endpoint.disabled_reason,
    )
    await emit(
        session,
        user_ids=await _admins(session, endpoint.org_id),
        type="webhook.disabled",
        consult_id=None,
        data={"endpoint_id": str(endpoint.id), "url": endpoint.url, "reason": endpoint.disabled_reason},
    )


async def _admins(session: AsyncSession, org_id: uuid.UUID) -> list[uuid.UUID]:
    users = (await session.execute(select(User).where(col(User.org_id) == org_id))).scalars()
    return [u.id for u in users if "org_admin" in u.roles and u.is_active]
