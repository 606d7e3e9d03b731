"""An org admin's webhook endpoints: register (the secret shown once), read, change, rotate, delete.
Every call is audited; another org's endpoint answers 404, as a missing one does."""

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit
from api.outbound import AddressRefused, check_resolved, split_url
from api.settings import Settings
from audit.service import record
from auth.principal import Actor
from auth.scope import ensure_own_org
from webhooks import feed, signing
from webhooks.exceptions import EndpointNotFound, UrlRefused
from webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from webhooks.schemas import EndpointCreated, EndpointIn, EndpointOut, EndpointPatch


async def create(
    session: AsyncSession, *, actor: Actor, org_id: uuid.UUID, data: EndpointIn, settings: Settings
) -> EndpointCreated:
    """Register an endpoint, fed from the log's present on; its secret is in this answer only."""
    ensure_own_org(actor, org_id)
    await check_url(data.url, settings)
    endpoint = WebhookEndpoint(
        org_id=org_id,
        url=data.url,
        description=data.description,
        event_types=sorted({t.value for t in data.event_types}),
        include_clinical=data.include_clinical,
        secret=signing.new_secret(),
        cursor=await feed.head(session),
        created_by=actor.id,
    )
    session.add(endpoint)
    await _audit(session, actor, endpoint, "webhook.create")
    return EndpointCreated.model_validate(endpoint)


async def list_endpoints(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID) -> list[WebhookEndpoint]:
    """The org's endpoints, oldest first."""
    ensure_own_org(actor, org_id)
    rows = await session.execute(
        select(WebhookEndpoint)
        .where(col(WebhookEndpoint.org_id) == org_id)
        .order_by(col(WebhookEndpoint.created_at))
    )
    endpoints = list(rows.scalars())
    await record(session, actor=actor, action="webhook.list", org_id=org_id, resource_type="webhook")
    await commit(session)
    return endpoints


async def read(
    session: AsyncSession, *, actor: Actor, org_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint:
    """One endpoint."""
    endpoint = await own(session, actor, org_id, endpoint_id)
    await _audit(session, actor, endpoint, "webhook.read")
    return endpoint


async def update(
    session: AsyncSession,
    *,
    actor: Actor,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    patch: EndpointPatch,
    settings: Settings,
) -> WebhookEndpoint:
    """Change the URL, the events, the clinical opt-in, or enable/disable it (enabling resumes its
    feed where it stopped, and forgets its failures)."""
    endpoint = await own(session, actor, org_id, endpoint_id, lock=True)
    if patch.url is not None:
        await check_url(patch.url, settings)
        endpoint.url = patch.url
    if patch.event_types is not None:
        endpoint.event_types = sorted({t.value for t in patch.event_types})
    if patch.description is not None:
        endpoint.description = patch.description
    if patch.include_clinical is not None:
        endpoint.include_clinical = patch.include_clinical
    if patch.enabled is True and not endpoint.enabled:
        endpoint.consecutive_failures, endpoint.failing_since, endpoint.disabled_reason = 0, None, None
    if patch.enabled is not None:
        endpoint.enabled = patch.enabled
        if not patch.enabled:
            endpoint.disabled_reason = "disabled by an admin"
    endpoint.updated_at = datetime.now(UTC)
    action = {None: "webhook.update", True: "webhook.enable", False: "webhook.disable"}[patch.enabled]
    await _audit(session, actor, endpoint, action)
    return endpoint


async def rotate_secret(
    session: AsyncSession,
    *,
    actor: Actor,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    at_once: bool,
    settings: Settings,
) -> EndpointCreated:
    """A new secret, shown this once; deliveries carry a signature under the old one too for the
    configured overlap (none with `at_once`: a leaked secret)."""
    endpoint = await own(session, actor, org_id, endpoint_id, lock=True)
    now = datetime.now(UTC)
    overlap = timedelta(seconds=0 if at_once else settings.webhooks_secret_overlap_seconds)
    endpoint.previous_secret, endpoint.previous_secret_until = endpoint.secret, now + overlap
    endpoint.secret, endpoint.updated_at = signing.new_secret(), now
    await _audit(session, actor, endpoint, "webhook.rotate_secret")
    return EndpointCreated.model_validate(endpoint)


async def remove(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
    """Delete an endpoint with its delivery log."""
    endpoint = await own(session, actor, org_id, endpoint_id, lock=True)
    for table in (WebhookAttempt, WebhookDelivery):
        await session.execute(delete(table).where(col(table.endpoint_id) == endpoint.id))
    await session.delete(endpoint)
    await _audit(session, actor, endpoint, "webhook.delete")


async def check_url(url: str, settings: Settings) -> None:
    """https to a public address (http and private ones only where the operator allows them)."""
    allow = settings.webhooks_allow_private_addresses
    try:
        host, port = split_url(url, allow_private=allow, what="url")
        await check_resolved(host, port, allow_private=allow, what="url")
    except AddressRefused as exc:
        raise UrlRefused(str(exc)) from None
    except OSError:
        raise UrlRefused("url's host does not resolve") from None


async def own(
    session: AsyncSession, actor: Actor, org_id: uuid.UUID, endpoint_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint:
    ensure_own_org(actor, org_id)
    query = select(WebhookEndpoint).where(
        col(WebhookEndpoint.id) == endpoint_id, col(WebhookEndpoint.org_id) == org_id
    )
    endpoint = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    if endpoint is None:
        raise EndpointNotFound()
    return endpoint


async def _audit(session: AsyncSession, actor: Actor, endpoint: WebhookEndpoint, action: str) -> None:
    await record(
        session,
        actor=actor,
        action=action,
        org_id=endpoint.org_id,
        resource_type="webhook",
        resource_id=endpoint.id,
    )
    await commit(session)


def out(endpoint: WebhookEndpoint) -> EndpointOut:
    return EndpointOut.model_validate(endpoint)
