"""Claiming due deliveries and recording what an attempt got: the delivery log, the retry schedule,
and an endpoint's run of failures.

A claim is a lease: the claiming transaction (rows locked with SKIP LOCKED on PostgreSQL, so
workers on other nodes take other rows) pushes the delivery's next attempt past the time a send may
take and stamps it with a token. Only the holder of that token records the result; a worker that
died mid-send leaves the delivery due again once the lease runs out (the receiver dedupes on
webhook-id), and two workers never send one delivery at the same time."""

import random
import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit
from api.settings import Settings
from webhooks import health
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.sender import Job, Outcome, live_secrets

CLAIM = 50


def retry_delay(attempt: int, settings: Settings) -> float:
    """After failed attempt n: base * 2^(n-1), capped, jittered over its upper half — so delays still
    grow from one attempt to the next while workers retrying together spread out."""
    delay = min(
        settings.webhooks_retry_max_seconds, settings.webhooks_retry_base_seconds * 2 ** (attempt - 1)
    )
    return delay / 2 + random.random() * delay / 2


def lease_seconds(settings: Settings) -> float:
    return settings.webhooks_timeout_seconds * 2 + 5


async def claim(
    session: AsyncSession,
    *,
    now: datetime,
    settings: Settings,
    limit: int = CLAIM,
    skip: Sequence[uuid.UUID] = (),
) -> list[Job]:
    """Lease up to `limit` due deliveries of enabled endpoints, oldest first; none of `skip`'s."""
    rows = (
        await session.execute(
            select(WebhookDelivery, WebhookEndpoint)
            .join(WebhookEndpoint, col(WebhookEndpoint.id) == col(WebhookDelivery.endpoint_id))
            .where(
                col(WebhookDelivery.status) == DeliveryStatus.pending,
                col(WebhookDelivery.next_attempt_at) <= now,
                col(WebhookEndpoint.enabled).is_(True),
                col(WebhookDelivery.endpoint_id).not_in(skip),
            )
            .order_by(col(WebhookDelivery.created_at), col(WebhookDelivery.seq))
            .limit(limit)
            .with_for_update(skip_locked=True, of=WebhookDelivery)
        )
    ).all()
    jobs = []
    for delivery, endpoint in rows:
        delivery.lease = secrets.token_hex(16)
        delivery.next_attempt_at = now + timedelta(seconds=lease_seconds(settings))
        jobs.append(_job(delivery, endpoint, now))
    await commit(session)
    return jobs


def _job(delivery: WebhookDelivery, endpoint: WebhookEndpoint, now: datetime) -> Job:
    assert delivery.lease is not None
    return Job(
        delivery_id=delivery.id,
        endpoint_id=endpoint.id,
        org_id=endpoint.org_id,
        consult_id=delivery.consult_id,
        lease=delivery.lease,
        url=endpoint.url,
        secrets=live_secrets(endpoint.secret, endpoint.previous_secret, endpoint.previous_secret_until, now),
        payload=delivery.payload,
        attempt=delivery.attempts + 1,
        manual=delivery.manual,
    )


async def record(
    session: AsyncSession, job: Job, outcome: Outcome, *, now: datetime, settings: Settings
) -> None:
    """Log the attempt and schedule what follows; nothing if the lease was lost meanwhile."""
    retry = (
        None
        if outcome.ok or job.attempt >= settings.webhooks_max_attempts
        else retry_delay(job.attempt, settings)
    )
    status = (
        DeliveryStatus.delivered
        if outcome.ok
        else DeliveryStatus.pending
        if retry is not None
        else DeliveryStatus.failed
    )
    values: dict[str, Any] = dict(
        status=status,
        attempts=job.attempt,
        lease=None,
        manual=False,
        next_attempt_at=now + timedelta(seconds=retry or 0),
        last_status_code=outcome.status_code,
        last_error=outcome.error,
    )
    if outcome.ok:
        values["delivered_at"] = now
    done = await session.execute(
        update(WebhookDelivery)
        .where(col(WebhookDelivery.id) == job.delivery_id, col(WebhookDelivery.lease) == job.lease)
        .values(**values)
    )
    if cast(CursorResult[Any], done).rowcount != 1:
        await session.rollback()
        return
    session.add(
        WebhookAttempt(
            delivery_id=job.delivery_id,
            endpoint_id=job.endpoint_id,
            attempt=job.attempt,
            manual=job.manual,
            at=now,
            status_code=outcome.status_code,
            latency_ms=outcome.latency_ms,
            error=outcome.error,
            retry_in_seconds=retry,
        )
    )
    if outcome.ok:
        await health.succeeded(session, job.endpoint_id)
    else:
        await health.failed(session, job.endpoint_id, now=now, settings=settings)
    await commit(session)
