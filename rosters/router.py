"""Specialist profiles, availability, rosters, shifts, on-call."""

import uuid

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import get_session
from api.schemas import Page, PageParams, make_page, page_params
from auth.dependencies import current_actor, require
from auth.principal import Actor
from auth.roles import Perm
from rosters import service
from rosters.schemas import (
    AvailabilityIn,
    OnCallOut,
    ProfileIn,
    ProfileOut,
    RosterIn,
    RosterOut,
    ShiftIn,
    ShiftOut,
)

router = APIRouter(tags=["rosters"])


@router.put("/specialists/{user_id}", response_model=ProfileOut, operation_id="setSpecialistProfile")
async def put_profile(
    user_id: uuid.UUID,
    body: ProfileIn,
    actor: Actor = Depends(current_actor),
    session: AsyncSession = Depends(get_session),
):
    """Set a specialist's specialties, languages and concurrency limit (self or roster manager)."""
    return await service.put_profile(session, actor=actor, user_id=user_id, data=body)


@router.put("/me/availability", response_model=ProfileOut)
async def put_availability(
    body: AvailabilityIn,
    actor: Actor = Depends(require(Perm.availability_set)),
    session: AsyncSession = Depends(get_session),
):
    """Say whether you can take consults now."""
    return await service.set_availability(session, actor=actor, availability=body.availability)


@router.post("/rosters", response_model=RosterOut, status_code=201)
async def create_roster(
    body: RosterIn,
    actor: Actor = Depends(require(Perm.rosters_manage)),
    session: AsyncSession = Depends(get_session),
):
    """Create a roster for one specialty."""
    return await service.create_roster(session, actor=actor, specialty=body.specialty, name=body.name)


@router.get("/rosters", response_model=Page[RosterOut])
async def list_rosters(
    specialty: str | None = Query(None, max_length=50),
    page: PageParams = Depends(page_params),
    actor: Actor = Depends(require(Perm.rosters_read)),
    session: AsyncSession = Depends(get_session),
):
    """The org's rosters."""
    rows = await service.list_rosters(session, actor=actor, specialty=specialty, page=page)
    return make_page(rows, page, RosterOut.model_validate)


@router.post("/rosters/{roster_id}/shifts", response_model=ShiftOut, status_code=201)
async def add_shift(
    roster_id: uuid.UUID,
    body: ShiftIn,
    actor: Actor = Depends(require(Perm.rosters_manage)),
    session: AsyncSession = Depends(get_session),
):
    """Put a specialist on the roster for a time, at a tier (overrides are shifts too)."""
    return await service.add_shift(session, actor=actor, roster_id=roster_id, data=body)


@router.get("/rosters/{roster_id}/on-call", response_model=list[OnCallOut])
async def on_call(
    roster_id: uuid.UUID,
    at: AwareDatetime | None = None,
    actor: Actor = Depends(require(Perm.rosters_read)),
    session: AsyncSession = Depends(get_session),
):
    """Who is on call on this roster now (or at `at`), by tier."""
    return await service.on_call(session, actor=actor, roster_id=roster_id, at=at)
