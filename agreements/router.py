"""Cooperation agreements between organizations."""

import uuid

from fastapi import APIRouter, Depends
from sqlalchemy.ext.asyncio import AsyncSession

from agreements import service
from agreements.models import AgreementStatus
from agreements.schemas import AgreementIn, AgreementOut
from api.db import get_session
from api.schemas import Page, PageParams, make_page, page_params
from auth.dependencies import require
from auth.principal import Actor
from auth.roles import Perm

router = APIRouter(tags=["agreements"])
manage = require(Perm.agreements_manage)


@router.post("/agreements", response_model=AgreementOut, status_code=201, operation_id="proposeAgreement")
async def propose(
    body: AgreementIn, actor: Actor = Depends(manage), session: AsyncSession = Depends(get_session)
):
    """Propose an agreement between the caller's org and another."""
    return await service.propose(session, actor=actor, data=body)


@router.get("/agreements", response_model=Page[AgreementOut])
async def list_agreements(
    status: AgreementStatus | None = None,
    page: PageParams = Depends(page_params),
    actor: Actor = Depends(require(Perm.agreements_read)),
    session: AsyncSession = Depends(get_session),
):
    """Agreements the caller's org is a party to."""
    rows = await service.list_agreements(session, actor=actor, status=status, page=page)
    return make_page(rows, page, AgreementOut.model_validate)


@router.get("/agreements/{agreement_id}", response_model=AgreementOut)
async def get_agreement(
    agreement_id: uuid.UUID,
    actor: Actor = Depends(require(Perm.agreements_read)),
    session: AsyncSession = Depends(get_session),
):
    """One agreement."""
    return await service.get_agreement(session, actor=actor, agreement_id=agreement_id)


def _action_route(action: str, doc: str) -> None:
    async def act(
        agreement_id: uuid.UUID, actor: Actor = Depends(manage), session: AsyncSession = Depends(get_session)
    ):
        return await service.transition(session, actor=actor, agreement_id=agreement_id, action=action)

    act.__doc__ = doc
    router.add_api_route(
        f"/agreements/{{agreement_id}}/{action}",
        act,
        methods=["POST"],
        response_model=AgreementOut,
        name=f"{action}_agreement",
        summary=f"{action.capitalize()} an agreement",
    )


_action_route("accept", "Accept a proposed agreement (the other party's admin).")
_action_route("suspend", "Suspend an active agreement (either party).")
_action_route("resume", "Resume a suspended agreement (the party that suspended it).")
_action_route("revoke", "Revoke an agreement for good (either party).")
