"""Organizations and their users."""

import uuid

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import get_session
from api.openapi import answers
from api.schemas import Page, PageParams, make_page, page_params
from auth.context import AuthContext
from auth.dependencies import auth_context, current_actor, require
from auth.exceptions import PermissionDenied
from auth.principal import Actor
from auth.roles import Perm
from orgs import service
from orgs.models import OrgKind
from orgs.schemas import OrgIn, OrgOut, UserIn, UserOut, UserPatch

router = APIRouter(tags=["organizations"])


@router.post("/orgs", response_model=OrgOut, status_code=201)
async def create_org(
    body: OrgIn,
    actor: Actor = Depends(require(Perm.orgs_create)),
    session: AsyncSession = Depends(get_session),
):
    """Create an organization (platform admin)."""
    return await service.create_org(session, actor=actor, name=body.name, kind=body.kind)


@router.get("/orgs", response_model=Page[OrgOut])
async def list_orgs(
    kind: OrgKind | None = None,
    page: PageParams = Depends(page_params),
    actor: Actor = Depends(current_actor),
    session: AsyncSession = Depends(get_session),
):
    """The directory of organizations."""
    rows = await service.list_orgs(session, actor=actor, kind=kind, page=page)
    return make_page(rows, page, OrgOut.model_validate)


@router.get("/orgs/{org_id}", response_model=OrgOut)
async def get_org(
    org_id: uuid.UUID, actor: Actor = Depends(current_actor), session: AsyncSession = Depends(get_session)
):
    """One organization."""
    return await service.get_org(session, actor=actor, org_id=org_id)


@answers(403)
async def user_creator(actor: Actor = Depends(current_actor)) -> Actor:
    """Org admins, and the platform admin for an org's first admin (orgs.service decides which)."""
    if not (actor.can(Perm.users_manage) or actor.can(Perm.orgs_create)):
        raise PermissionDenied()
    return actor


@router.post("/orgs/{org_id}/users", response_model=UserOut, status_code=201)
async def create_user(
    org_id: uuid.UUID,
    body: UserIn,
    actor: Actor = Depends(user_creator),
    session: AsyncSession = Depends(get_session),
    ctx: AuthContext = Depends(auth_context),
):
    """Add a user to the org (its admin; the platform admin only its first admin)."""
    return await service.create_user(
        session,
        ctx=ctx,
        actor=actor,
        org_id=org_id,
        username=body.username,
        password=body.password,
        display_name=body.display_name,
        roles=body.roles,
    )


@router.get("/orgs/{org_id}/users", response_model=Page[UserOut])
async def list_users(
    org_id: uuid.UUID,
    role: str | None = Query(None, max_length=32),
    page: PageParams = Depends(page_params),
    actor: Actor = Depends(require(Perm.users_read)),
    session: AsyncSession = Depends(get_session),
):
    """The org's users."""
    rows = await service.list_users(session, actor=actor, org_id=org_id, role=role, page=page)
    return make_page(rows, page, UserOut.model_validate)


@router.patch("/orgs/{org_id}/users/{user_id}", response_model=UserOut)
async def update_user(
    org_id: uuid.UUID,
    user_id: uuid.UUID,
    body: UserPatch,
    actor: Actor = Depends(require(Perm.users_manage)),
    session: AsyncSession = Depends(get_session),
    ctx: AuthContext = Depends(auth_context),
):
    """Change a user's name, password, roles, or disable them."""
    return await service.update_user(
        session, ctx=ctx, actor=actor, org_id=org_id, user_id=user_id, patch=body
    )
