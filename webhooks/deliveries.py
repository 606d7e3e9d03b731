"""An endpoint's delivery log (each delivery, each attempt) and redelivery by hand."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit
from api.schemas import PageParams
from audit.service import record
from auth.principal import Actor
from webhooks import signing
from webhooks.exceptions import DeliveryNotFound
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from webhooks.schemas import AttemptOut, DeliveryDetail, DeliveryOut
from webhooks.service import own


async def list_deliveries(
    session: AsyncSession,
    *,
    actor: Actor,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    status: DeliveryStatus | None,
    page: PageParams,
) -> list[WebhookDelivery]:
    """The endpoint's deliveries, newest first (limit + 1 rows: make_page tells if there are more)."""
    endpoint = await own(session, actor, org_id, endpoint_id)
    query = select(WebhookDelivery).where(col(WebhookDelivery.endpoint_id) == endpoint.id)
    if status is not None:
        query = query.where(col(WebhookDelivery.status) == status)
    rows = await session.execute(
        query.order_by(col(WebhookDelivery.seq).desc()).offset(page.offset).limit(page.limit + 1)
    )
    deliveries = list(rows.scalars())
    await _audit(session, actor, org_id, endpoint_id, "webhook.deliveries.read")
    return deliveries


async def read_delivery(
    session: AsyncSession, *, actor: Actor, org_id: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> DeliveryDetail:
    """One delivery with every attempt at it, oldest first."""
    delivery = await _own_delivery(session, actor, org_id, endpoint_id, delivery_id)
    tries = await session.execute(
        select(WebhookAttempt)
        .where(col(WebhookAttempt.delivery_id) == delivery.id)
        .order_by(col(WebhookAttempt.attempt))
    )
    detail = DeliveryDetail(
        **delivery_out(delivery).model_dump(),
        attempt_log=[AttemptOut.model_validate(a) for a in tries.scalars()],
    )
    await _audit(session, actor, org_id, endpoint_id, "webhook.deliveries.read")
    return detail


async def redeliver(
    session: AsyncSession, *, actor: Actor, org_id: uuid.UUID, endpoint_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery:
    """Send it again now, as it was (same webhook-id and body), whatever became of it before."""
    delivery = await _own_delivery(session, actor, org_id, endpoint_id, delivery_id, lock=True)
    delivery.status, delivery.manual = DeliveryStatus.pending, True
    delivery.next_attempt_at, delivery.lease = datetime.now(UTC), None
    await _audit(session, actor, org_id, endpoint_id, "webhook.redeliver")
    return delivery


def delivery_out(delivery: WebhookDelivery) -> DeliveryOut:
    pending = delivery.status == DeliveryStatus.pending
    return DeliveryOut.model_validate(
        {
            **delivery.model_dump(),
            "webhook_id": signing.webhook_id(delivery.id),
            "next_attempt_at": delivery.next_attempt_at if pending else None,
        }
    )


async def _own_delivery(
    session: AsyncSession,
    actor: Actor,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    *,
    lock: bool = False,
) -> WebhookDelivery:
    endpoint = await own(session, actor, org_id, endpoint_id)
    query = select(WebhookDelivery).where(
        col(WebhookDelivery.id) == delivery_id, col(WebhookDelivery.endpoint_id) == endpoint.id
    )
    delivery = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    if delivery is None:
        raise DeliveryNotFound()
    return delivery


async def _audit(
    session: AsyncSession, actor: Actor, org_id: uuid.UUID, endpoint_id: uuid.UUID, action: str
) -> None:
    await record(
        session, actor=actor, action=action, org_id=org_id, resource_type="webhook", resource_id=endpoint_id
    )
    await commit(session)
