"""Sign-in, tokens, who-am-I, and an org's clients and identity providers."""

import uuid

from fastapi import APIRouter, Depends, Query, Request, status
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import get_session
from api.openapi import problems
from auth import clients, idp, service
from auth.context import AuthContext
from auth.dependencies import anonymous, auth_context, current_actor, require
from auth.models import User
from auth.principal import Actor, Anonymous
from auth.roles import Perm
from auth.schemas import (
    ClientCreated,
    ClientIn,
    ClientOut,
    ClientPatch,
    ClientToken,
    IdentityLinkIn,
    IdentityLinkOut,
    IdpIn,
    IdpOut,
    IdpPatch,
    LoginIn,
    MeOut,
    RefreshIn,
    TokenPair,
)

router = APIRouter()
manage = require(Perm.identity_manage)


@router.post(
    "/auth/login", response_model=TokenPair, tags=["auth"], operation_id="login", responses=problems(401, 429)
)
async def login(
    body: LoginIn,
    actor: Anonymous = Depends(anonymous),
    session: AsyncSession = Depends(get_session),
    ctx: AuthContext = Depends(auth_context),
) -> TokenPair:
    """Sign in with username and password."""
    return await service.login(
        session, ctx=ctx, actor=actor, username=body.username, password=body.password, org_id=body.org_id
    )


@router.post(
    "/auth/refresh",
    response_model=TokenPair,
    tags=["auth"],
    operation_id="refreshTokens",
    responses=problems(401),
)
async def refresh(
    body: RefreshIn,
    actor: Anonymous = Depends(anonymous),
    session: AsyncSession = Depends(get_session),
    ctx: AuthContext = Depends(auth_context),
) -> TokenPair:
    """Trade a refresh token for a new pair; the old one stops working."""
    return await service.refresh(session, ctx=ctx, actor=actor, token=body.refresh_token)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT, tags=["auth"], operation_id="logout")
async def logout(actor: Actor = Depends(current_actor), session: AsyncSession = Depends(get_session)) -> None:
    """Sign out: revoke this sign-in's access and refresh tokens."""
    await service.logout(session, actor=actor)


@router.post(
    "/auth/token",
    response_model=ClientToken,
    tags=["auth"],
    operation_id="grantClientToken",
    responses=problems(401, 429),
    openapi_extra={
        "requestBody": {
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "grant_type": {"type": "string", "enum": ["client_credentials"]},
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string"},
                            "scope": {"type": "string"},
                        },
                        "required": ["grant_type"],
                    }
                }
            }
        }
    },
)
async def token(
    request: Request,
    actor: Anonymous = Depends(anonymous),
    session: AsyncSession = Depends(get_session),
    ctx: AuthContext = Depends(auth_context),
) -> ClientToken:
    """OAuth 2 client-credentials grant for integration clients."""
    return await clients.grant(
        session,
        ctx=ctx,
        actor=actor,
        body=await request.body(),
        authorization=request.headers.get("authorization"),
    )


@router.get("/me", response_model=MeOut, tags=["auth"])
async def me(actor: Actor = Depends(current_actor), session: AsyncSession = Depends(get_session)) -> MeOut:
    """The caller: identity, organization, roles and permissions."""
    user = await session.get(User, actor.id) if actor.kind == "user" else None
    return MeOut(
        kind=actor.kind,
        id=actor.id,
        org_id=actor.org_id,
        username=user.username if user else None,
        display_name=user.display_name if user else None,
        roles=sorted(actor.roles),
        permissions=sorted(actor.perms),
    )


@router.post("/orgs/{org_id}/clients", response_model=ClientCreated, status_code=201, tags=["integration"])
async def create_client(
    org_id: uuid.UUID,
    body: ClientIn,
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
) -> ClientCreated:
    """Create an integration client; the secret is shown only in this answer."""
    return await clients.create_client(
        session, actor=actor, org_id=org_id, name=body.name, scopes=body.scopes
    )


@router.get("/orgs/{org_id}/clients", response_model=list[ClientOut], tags=["integration"])
async def list_clients(
    org_id: uuid.UUID, actor: Actor = Depends(manage), session: AsyncSession = Depends(get_session)
):
    """The org's integration clients."""
    return await clients.list_clients(session, actor=actor, org_id=org_id)


@router.patch("/orgs/{org_id}/clients/{client_id}", response_model=ClientOut, tags=["integration"])
async def update_client(
    org_id: uuid.UUID,
    client_id: uuid.UUID,
    body: ClientPatch,
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
):
    """Rename, disable or enable a client; disabling takes effect at once, open sockets included."""
    return await clients.update_client(session, actor=actor, org_id=org_id, client_id=client_id, patch=body)


@router.post(
    "/orgs/{org_id}/clients/{client_id}/secret",
    response_model=ClientCreated,
    tags=["integration"],
    operation_id="rotateClientSecret",
)
async def rotate_client_secret(
    org_id: uuid.UUID,
    client_id: uuid.UUID,
    at_once: bool = Query(False, description="refuse the old secret now (it leaked), with no overlap"),
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
    ctx: AuthContext = Depends(auth_context),
) -> ClientCreated:
    """Issue a new secret (shown once); the old one works for the configured overlap, then is refused."""
    return await clients.rotate_secret(
        session, ctx=ctx, actor=actor, org_id=org_id, client_id=client_id, at_once=at_once
    )


@router.delete(
    "/orgs/{org_id}/clients/{client_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["integration"]
)
async def delete_client(
    org_id: uuid.UUID,
    client_id: uuid.UUID,
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
) -> None:
    """Delete a client: its secret and tokens are refused and its sockets closed."""
    await clients.delete_client(session, actor=actor, org_id=org_id, client_id=client_id)


@router.post(
    "/orgs/{org_id}/identity-providers", response_model=IdpOut, status_code=201, tags=["integration"]
)
async def create_idp(
    org_id: uuid.UUID,
    body: IdpIn,
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
    ctx: AuthContext = Depends(auth_context),
):
    """Trust an OIDC issuer and its keys (inline JWKS or jwks_uri) for this org's users."""
    return await idp.register(
        session,
        ctx=ctx,
        actor=actor,
        org_id=org_id,
        issuer=body.issuer,
        audience=body.audience,
        jwks=body.jwks,
        jwks_uri=body.jwks_uri,
    )


@router.patch("/orgs/{org_id}/identity-providers/{idp_id}", response_model=IdpOut, tags=["integration"])
async def update_idp(
    org_id: uuid.UUID,
    idp_id: uuid.UUID,
    body: IdpPatch,
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
    ctx: AuthContext = Depends(auth_context),
):
    """Change an identity provider's audience or keys, or disable / enable it; effective at once."""
    return await idp.update(session, ctx=ctx, actor=actor, org_id=org_id, idp_id=idp_id, patch=body)


@router.delete(
    "/orgs/{org_id}/identity-providers/{idp_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["integration"]
)
async def delete_idp(
    org_id: uuid.UUID,
    idp_id: uuid.UUID,
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
) -> None:
    """Stop trusting an identity provider; its links go with it."""
    await idp.delete(session, actor=actor, org_id=org_id, idp_id=idp_id)


@router.get("/orgs/{org_id}/identity-providers", response_model=list[IdpOut], tags=["integration"])
async def list_idps(
    org_id: uuid.UUID, actor: Actor = Depends(manage), session: AsyncSession = Depends(get_session)
):
    """The org's identity providers."""
    return await idp.list_idps(session, actor=actor, org_id=org_id)


@router.post(
    "/orgs/{org_id}/identity-providers/{idp_id}/links",
    response_model=IdentityLinkOut,
    status_code=201,
    tags=["integration"],
)
async def link_identity(
    org_id: uuid.UUID,
    idp_id: uuid.UUID,
    body: IdentityLinkIn,
    actor: Actor = Depends(manage),
    session: AsyncSession = Depends(get_session),
):
    """Map an identity provider's subject to one of the org's users."""
    return await idp.link(
        session, actor=actor, org_id=org_id, idp_id=idp_id, user_id=body.user_id, subject=body.subject
    )
