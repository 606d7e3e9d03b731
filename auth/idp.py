"""External identity providers (OIDC issuers) an org trusts, and the users they map to."""

import uuid

from sqlalchemy import delete as sa_delete
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit, insert_unique
from api.errors import Conflict, InvalidInput
from api.models import utcnow
from audit.service import record
from auth.context import AuthContext
from auth.exceptions import Hidden
from auth.jwks import validate_jwks
from auth.jwks_fetch import JwksUnavailable, fetch_jwks
from auth.models import ExternalIdentity, IdentityProvider, User
from auth.principal import Actor
from auth.schemas import IdpPatch
from auth.scope import ensure_own_org
from events.control import user_ended


async def register(
    session: AsyncSession,
    *,
    ctx: AuthContext,
    actor: Actor,
    org_id: uuid.UUID,
    issuer: str,
    audience: str,
    jwks: dict | None,
    jwks_uri: str | None,
) -> IdentityProvider:
    """Trust an issuer's keys for this org's users (unique per org: other orgs' registrations are theirs)."""
    ensure_own_org(actor, org_id)
    if issuer == ctx.settings.jwt_issuer:
        raise InvalidInput("That issuer is Liaison's own")
    await _check_keys(ctx, jwks, jwks_uri)
    idp = IdentityProvider(
        org_id=org_id,
        issuer=issuer,
        audience=audience,
        jwks=jwks or {},
        jwks_uri=jwks_uri,
        updated_at=utcnow(),
    )
    await insert_unique(session, idp, Conflict("This organization already registered that issuer"))
    await _audit(session, actor, idp, "idp.create")
    return idp


async def update(
    session: AsyncSession,
    *,
    ctx: AuthContext,
    actor: Actor,
    org_id: uuid.UUID,
    idp_id: uuid.UUID,
    patch: IdpPatch,
) -> IdentityProvider:
    """Change the audience or the keys (a rotation, a withdrawal), or disable / enable the provider.
    Anything that could refuse a token it accepted before also closes its users' open sockets."""
    idp = await _own(session, actor, org_id, idp_id)
    if patch.jwks is not None or patch.jwks_uri is not None:
        await _check_keys(ctx, patch.jwks, patch.jwks_uri)
        idp.jwks, idp.jwks_uri = patch.jwks or {}, patch.jwks_uri
    if patch.audience is not None:
        idp.audience = patch.audience
    narrowed = patch.model_fields_set & {"jwks", "jwks_uri", "audience"} or (
        patch.is_active is False and idp.is_active
    )
    if patch.is_active is not None:
        idp.is_active = patch.is_active
    idp.updated_at = utcnow()  # the key caches of every node are keyed by it
    if narrowed:
        await _close_linked(session, idp, "The identity provider's settings changed; sign in again")
    await _audit(
        session, actor, idp, {None: "idp.update", True: "idp.enable", False: "idp.disable"}[patch.is_active]
    )
    return idp


async def delete(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID, idp_id: uuid.UUID) -> None:
    """Stop trusting the provider: its links go with it, its tokens are refused, its users' sockets close."""
    idp = await _own(session, actor, org_id, idp_id)
    await _close_linked(session, idp, "The identity provider was removed")
    await session.execute(sa_delete(ExternalIdentity).where(col(ExternalIdentity.idp_id) == idp.id))
    await session.delete(idp)
    await _audit(session, actor, idp, "idp.delete")


async def _check_keys(ctx: AuthContext, jwks: dict | None, jwks_uri: str | None) -> None:
    """Inline keys must be a usable JWKS; a jwks_uri must answer one now, through the guarded fetch."""
    s = ctx.settings
    try:
        if jwks_uri is not None:
            await fetch_jwks(
                jwks_uri, timeout=s.jwks_fetch_timeout, allow_private=s.jwks_allow_private_addresses
            )
        else:
            validate_jwks(jwks or {})
    except JwksUnavailable as exc:
        raise InvalidInput(f"Unusable jwks_uri: {exc}") from None
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidInput(f"Unusable JWKS: {exc}") from None


async def _close_linked(session: AsyncSession, idp: IdentityProvider, reason: str) -> None:
    # A socket does not remember which provider signed it in: every linked user's sockets close,
    # and those signed in by password simply reconnect.
    linked = await session.execute(
        select(col(ExternalIdentity.user_id)).where(col(ExternalIdentity.idp_id) == idp.id)
    )
    for user_id in sorted(set(linked.scalars())):
        user_ended(session, user_id, reason)


async def _own(session: AsyncSession, actor: Actor, org_id: uuid.UUID, idp_id: uuid.UUID) -> IdentityProvider:
    ensure_own_org(actor, org_id)
    idp = await session.get(IdentityProvider, idp_id)
    if idp is None or idp.org_id != org_id:
        raise Hidden()
    return idp


async def _audit(session: AsyncSession, actor: Actor, idp: IdentityProvider, action: str) -> None:
    await record(
        session, actor=actor, action=action, org_id=idp.org_id, resource_type="idp", resource_id=idp.id
    )
    await commit(session)


async def list_idps(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID) -> list[IdentityProvider]:
    """The org's identity providers."""
    ensure_own_org(actor, org_id)
    rows = (
        (await session.execute(select(IdentityProvider).where(col(IdentityProvider.org_id) == org_id)))
        .scalars()
        .all()
    )
    await record(session, actor=actor, action="idp.list", org_id=org_id, resource_type="idp")
    await commit(session)
    return list(rows)


async def link(
    session: AsyncSession,
    *,
    actor: Actor,
    org_id: uuid.UUID,
    idp_id: uuid.UUID,
    user_id: uuid.UUID,
    subject: str,
) -> ExternalIdentity:
    """Map the provider's subject to one of the org's users."""
    ensure_own_org(actor, org_id)
    idp, user = await session.get(IdentityProvider, idp_id), await session.get(User, user_id)
    if idp is None or idp.org_id != org_id or user is None or user.org_id != org_id:
        raise Hidden()
    ident = ExternalIdentity(idp_id=idp_id, subject=subject, user_id=user_id)
    await insert_unique(session, ident, Conflict("That subject is already linked"))
    await record(
        session, actor=actor, action="idp.link", org_id=org_id, resource_type="user", resource_id=user_id
    )
    await commit(session)
    return ident
