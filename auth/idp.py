"""External identity providers (OIDC issuers) an org trusts, and the users they map to."""

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit
from api.errors import Conflict, InvalidInput
from audit.service import record
from auth.exceptions import Hidden
from auth.jwks import validate_jwks
from auth.models import ExternalIdentity, IdentityProvider, User
from auth.principal import Actor
from auth.scope import ensure_own_org


async def register(
    session: AsyncSession, *, actor: Actor, org_id: uuid.UUID, issuer: str, audience: str, jwks: dict
) -> IdentityProvider:
    """Trust an issuer's keys for this org's users."""
    ensure_own_org(actor, org_id)
    try:
        validate_jwks(jwks)
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidInput(f"Unusable JWKS: {exc}") from None
    idp = IdentityProvider(org_id=org_id, issuer=issuer, audience=audience, jwks=jwks)
    await _insert(session, idp, "That issuer is already registered")
    await record(
        session, actor=actor, action="idp.create", org_id=org_id, resource_type="idp", resource_id=idp.id
    )
    await commit(session)
    return idp


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
    await _insert(session, ident, "That subject is already linked")
    await record(
        session, actor=actor, action="idp.link", org_id=org_id, resource_type="user", resource_id=user_id
    )
    await commit(session)
    return ident


async def _insert(session: AsyncSession, row: IdentityProvider | ExternalIdentity, conflict: str) -> None:
    """Flush the new row at once: a duplicate must surface here as a 409, not in a later autoflush as a 500."""
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(conflict) from None
