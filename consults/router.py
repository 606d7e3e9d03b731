"""Consults, offers, clocks and escalation policy; the thread's routes are in thread_router."""

import uuid
from typing import Literal

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import get_session
from api.schemas import Page, PageParams, make_page, page_params
from auth.dependencies import current_actor, require, require_user
from auth.principal import Actor
from auth.roles import Perm
from consults import handling, offers, policy, service, stats, thread_router
from consults.access import View
from consults.models import Status, Urgency
from consults.schemas import (
    AssignIn,
    CompleteIn,
    ConsultIn,
    ConsultOut,
    OfferOut,
    PolicyIn,
    RatingIn,
    StatRow,
    TriageOut,
)

router = APIRouter(tags=["consults"])
respond = require(Perm.consults_respond)


full = service.answer  # the consult with its clocks, as every route here answers it


@router.post("/consults", response_model=ConsultOut, status_code=201)
async def create(
    body: ConsultIn,
    actor: Actor = Depends(require(Perm.consults_create)),
    idempotency_key: str | None = Header(None, max_length=200),
    session: AsyncSession = Depends(get_session),
):
    """Request a consult; answered once it is stored. A retry with the same Idempotency-Key gets the first answer."""
    consult, created = await service.create(session, actor=actor, data=body, idempotency_key=idempotency_key)
    if created:
        return full(consult)
    return JSONResponse(
        service.first_answer(consult), status_code=201, headers={"Idempotent-Replayed": "true"}
    )


@router.get("/consults", response_model=Page[ConsultOut])
async def list_consults(
    status: Status | None = None,
    specialty: str | None = None,
    urgency: Urgency | None = None,
    page: PageParams = Depends(page_params),
    actor: Actor = Depends(current_actor),
    session: AsyncSession = Depends(get_session),
):
    """Coordinators see their org's queue; others what they requested or were assigned."""
    rows = await service.list_consults(
        session, actor=actor, status=status, specialty=specialty, urgency=urgency, page=page
    )
    return make_page(rows, page, full)


@router.get("/consults/{consult_id}", response_model=ConsultOut | TriageOut)
async def get(
    consult_id: uuid.UUID, actor: Actor = Depends(current_actor), session: AsyncSession = Depends(get_session)
):
    """One consult: all of it for its participants, the triage summary for a specialist offered it."""
    consult, view = await service.get(session, actor=actor, consult_id=consult_id)
    return full(consult) if view is View.full else TriageOut.model_validate(consult)


@router.get("/offers", response_model=Page[OfferOut])
async def my_offers(
    page: PageParams = Depends(page_params),
    actor: Actor = Depends(respond),
    session: AsyncSession = Depends(get_session),
):
    """My pending offers."""
    rows = await offers.pending_offers(session, actor=actor, page=page)
    return make_page(
        rows, page, lambda r: OfferOut(**r[0].model_dump(), consult=TriageOut.model_validate(r[1]))
    )


@router.post("/consults/{consult_id}/accept", response_model=ConsultOut)
async def accept(
    consult_id: uuid.UUID, actor: Actor = Depends(respond), session: AsyncSession = Depends(get_session)
):
    """Accept an offer; exactly one specialist wins, the others get 409."""
    return full(await offers.accept(session, actor=actor, consult_id=consult_id))


@router.post("/consults/{consult_id}/decline", status_code=204)
async def decline(
    consult_id: uuid.UUID, actor: Actor = Depends(respond), session: AsyncSession = Depends(get_session)
):
    """Decline an offer."""
    await offers.decline(session, actor=actor, consult_id=consult_id)


@router.post("/consults/{consult_id}/cancel", response_model=ConsultOut)
async def cancel(
    consult_id: uuid.UUID, actor: Actor = Depends(require_user), session: AsyncSession = Depends(get_session)
):
    """Cancel (the requester or a coordinator), any time before completion."""
    return full(await service.cancel(session, actor=actor, consult_id=consult_id))


@router.post("/consults/{consult_id}/assign", response_model=ConsultOut)
async def assign(
    consult_id: uuid.UUID,
    body: AssignIn,
    actor: Actor = Depends(require(Perm.consults_queue)),
    session: AsyncSession = Depends(get_session),
):
    """Assign or reassign by hand (a coordinator of the requesting org)."""
    return full(
        await handling.assign(session, actor=actor, consult_id=consult_id, specialist_id=body.specialist_id)
    )


@router.post("/consults/{consult_id}/complete", response_model=ConsultOut)
async def complete(
    consult_id: uuid.UUID,
    body: CompleteIn,
    actor: Actor = Depends(respond),
    session: AsyncSession = Depends(get_session),
):
    """Complete with a recommendation and a disposition (the assigned specialist)."""
    return full(
        await handling.complete(
            session,
            actor=actor,
            consult_id=consult_id,
            recommendation=body.recommendation,
            disposition=body.disposition,
        )
    )


@router.post("/consults/{consult_id}/rating", response_model=ConsultOut, operation_id="rateConsult")
async def rate(
    consult_id: uuid.UUID,
    body: RatingIn,
    actor: Actor = Depends(require_user),
    session: AsyncSession = Depends(get_session),
):
    """Say whether the consult helped (the requester)."""
    return full(await handling.rate(session, actor=actor, consult_id=consult_id, helpful=body.helpful))


@router.get("/stats/response-times", response_model=list[StatRow], operation_id="getResponseTimeStats")
async def response_times(
    group_by: Literal["specialty", "urgency", "org"] = "specialty",
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    actor: Actor = Depends(require(Perm.stats_read)),
    session: AsyncSession = Depends(get_session),
):
    """Median and 90th percentile of each response interval, by specialty, urgency or org, over a period."""
    return await stats.response_times(session, actor=actor, group_by=group_by, since=since, until=until)


@router.get("/orgs/{org_id}/escalation-policy", response_model=PolicyIn)
async def get_policy(
    org_id: uuid.UUID,
    actor: Actor = Depends(require(Perm.policy_manage)),
    session: AsyncSession = Depends(get_session),
):
    """Acknowledgement windows (seconds) by urgency."""
    return await policy.get_policy(session, actor=actor, org_id=org_id)


@router.put("/orgs/{org_id}/escalation-policy", response_model=PolicyIn)
async def put_policy(
    org_id: uuid.UUID,
    body: PolicyIn,
    actor: Actor = Depends(require(Perm.policy_manage)),
    session: AsyncSession = Depends(get_session),
):
    """Set the acknowledgement windows (seconds) by urgency."""
    return await policy.set_policy(session, actor=actor, org_id=org_id, windows=body.model_dump())


# The thread's routes are mounted wherever this router is, with its tags.
router.include_router(thread_router.router)
