"""An org's webhook endpoints and their delivery log (org admins: `webhooks:manage`)."""

import uuid

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import get_session
from api.schemas import Page, PageParams, make_page, page_params
from api.settings import Settings
from auth.principal import Actor
from webhooks import deliveries, service
from webhooks.dependencies import manage, settings, wake_worker
from webhooks.models import DeliveryStatus
from webhooks.schemas import (
    DeliveryDetail,
    DeliveryOut,
    EndpointCreated,
    EndpointIn,
    EndpointOut,
    EndpointPatch,
)

router = APIRouter(tags=["webhooks"])
BASE = "/orgs/{org_id}/webhooks"


@router.post(BASE, response_model=EndpointCreated, status_code=201)
async def create_endpoint(
    org_id: uuid.UUID,
    body: EndpointIn,
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
    s: Settings = Depends(settings),
) -> EndpointCreated:
    """Register an endpoint for the chosen events; its signing secret is shown only in this answer."""
    return await service.create(session, actor=actor, org_id=org_id, data=body, settings=s)


@router.get(BASE, response_model=list[EndpointOut])
async def list_endpoints(
    org_id: uuid.UUID, actor: Actor = Depends(manage), session: AsyncSession = Depends(get_session)
) -> list[EndpointOut]:
    """The org's endpoints."""
    return [service.out(e) for e in await service.list_endpoints(session, actor=actor, org_id=org_id)]


@router.get(BASE + "/{endpoint_id}", response_model=EndpointOut)
async def read_endpoint(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
) -> EndpointOut:
    """One endpoint."""
    return service.out(await service.read(session, actor=actor, org_id=org_id, endpoint_id=endpoint_id))


@router.patch(BASE + "/{endpoint_id}", response_model=EndpointOut)
async def update_endpoint(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    body: EndpointPatch,
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
    s: Settings = Depends(settings),
) -> EndpointOut:
    """Change the URL, events or clinical opt-in; disable, or re-enable (resuming where it stopped)."""
    endpoint = await service.update(
        session, actor=actor, org_id=org_id, endpoint_id=endpoint_id, patch=body, settings=s
    )
    return service.out(endpoint)


@router.post(BASE + "/{endpoint_id}/secret", response_model=EndpointCreated)
async def rotate_secret(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    at_once: bool = Query(False, description="stop signing with the old secret now (it leaked)"),
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
    s: Settings = Depends(settings),
) -> EndpointCreated:
    """A new secret (shown once); both sign every delivery during the configured overlap."""
    return await service.rotate_secret(
        session, actor=actor, org_id=org_id, endpoint_id=endpoint_id, at_once=at_once, settings=s
    )


@router.delete(BASE + "/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_endpoint(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
) -> None:
    """Delete an endpoint and its delivery log."""
    await service.remove(session, actor=actor, org_id=org_id, endpoint_id=endpoint_id)


@router.get(BASE + "/{endpoint_id}/deliveries", response_model=Page[DeliveryOut])
async def list_deliveries(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    delivery_status: DeliveryStatus | None = Query(None, alias="status"),
    page: PageParams = Depends(page_params),
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
) -> dict:
    """The delivery log, newest first: each delivery's status, attempts, last status code and error."""
    rows = await deliveries.list_deliveries(
        session, actor=actor, org_id=org_id, endpoint_id=endpoint_id, status=delivery_status, page=page
    )
    return make_page(rows, page, deliveries.delivery_out)


@router.get(BASE + "/{endpoint_id}/deliveries/{delivery_id}", response_model=DeliveryDetail)
async def read_delivery(
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
) -> DeliveryDetail:
    """One delivery and every attempt at it (status code, latency, error, the retry scheduled)."""
    return await deliveries.read_delivery(
        session, actor=actor, org_id=org_id, endpoint_id=endpoint_id, delivery_id=delivery_id
    )


@router.post(
    BASE + "/{endpoint_id}/deliveries/{delivery_id}/redeliver", response_model=DeliveryOut, status_code=202
)
async def redeliver(
    request: Request,
    org_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    delivery_id: uuid.UUID,
    background: BackgroundTasks,
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
) -> DeliveryOut:
    """Send a delivery again now, with its webhook-id and body unchanged."""
    delivery = await deliveries.redeliver(
        session, actor=actor, org_id=org_id, endpoint_id=endpoint_id, delivery_id=delivery_id
    )
    background.add_task(wake_worker, request)
    return deliveries.delivery_out(delivery)
