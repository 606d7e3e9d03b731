"""From a bearer token to an Actor: our own users and clients, or an org's identity provider."""

import uuid

from jose import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from auth.context import AuthContext
from auth.exceptions import InvalidTokenError
from auth.jwks import keyring_from_jwks
from auth.models import AuthSession, ExternalIdentity, IdentityProvider, IntegrationClient, User
from auth.principal import Actor
from auth.roles import CLIENT_SCOPES, Perm, perms_for_roles
from auth.tokens import InvalidToken, verify


async def authenticate(session: AsyncSession, *, ctx: AuthContext, token: str) -> Actor:
    """Verify the token and load who it names now, so disabling or new roles apply at once."""
    try:
        issuer = _peek_issuer(token)
        if issuer == ctx.settings.jwt_issuer:
            actor = await _local(session, ctx, token)
        else:
            actor = await _external(session, ctx, token, issuer)
    except InvalidToken:
        actor = None
    if actor is None:
        raise InvalidTokenError()
    return actor


def _peek_issuer(token: str) -> str:
    try:
        iss = jwt.get_unverified_claims(token).get("iss")
    except Exception:
        raise InvalidToken("malformed token") from None
    if not isinstance(iss, str):
        raise InvalidToken("no issuer")
    return iss


async def _local(session: AsyncSession, ctx: AuthContext, token: str) -> Actor | None:
    s = ctx.settings
    claims = verify(
        token, ctx.keyring, audience=s.jwt_audience, issuer=s.jwt_issuer, typ="access", leeway=s.clock_leeway
    )
    if "cid" in claims:
        return await _client(session, claims)
    user_id, session_id = _uuid(claims.get("sub")), _uuid(claims.get("sid"))
    row = (
        await session.execute(
            select(User, AuthSession)
            .join(AuthSession, col(AuthSession.user_id) == col(User.id))
            .where(col(User.id) == user_id, col(AuthSession.id) == session_id)
        )
    ).first()
    if row is None or row.AuthSession.revoked_at is not None or not row.User.is_active:
        return None
    if str(row.User.org_id) != claims.get("org"):
        return None
    return _user_actor(row.User, session_id)


async def _client(session: AsyncSession, claims: dict) -> Actor | None:
    client = await session.get(IntegrationClient, _uuid(claims.get("cid")))
    if client is None or not client.is_active or str(client.org_id) != claims.get("org"):
        return None
    granted = set(claims.get("scope", "").split()) if isinstance(claims.get("scope"), str) else set()
    perms = frozenset(Perm(p) for p in granted & set(client.scopes) if p in CLIENT_SCOPES)
    return Actor(kind="client", id=client.id, org_id=client.org_id, perms=perms)


async def _external(session: AsyncSession, ctx: AuthContext, token: str, issuer: str) -> Actor | None:
    idp = (
        await session.execute(select(IdentityProvider).where(col(IdentityProvider.issuer) == issuer))
    ).scalar_one_or_none()
    if idp is None:
        return None
    verify(
        token,
        keyring_from_jwks(idp.jwks),
        audience=idp.audience,
        issuer=idp.issuer,
        typ=None,
        leeway=ctx.settings.clock_leeway,
        required=("exp", "iat", "iss", "aud", "sub"),
    )
    subject = jwt.get_unverified_claims(token)["sub"]
    user = (
        await session.execute(
            select(User)
            .join(ExternalIdentity, col(ExternalIdentity.user_id) == col(User.id))
            .where(col(ExternalIdentity.idp_id) == idp.id, ExternalIdentity.subject == subject)
        )
    ).scalar_one_or_none()
    if user is None or not user.is_active or user.org_id != idp.org_id:
        return None
    return _user_actor(user, None)


def _user_actor(user: User, session_id: uuid.UUID | None) -> Actor:
    return Actor(
        kind="user",
        id=user.id,
        org_id=user.org_id,
        roles=frozenset(user.roles),
        perms=perms_for_roles(user.roles),
        session_id=session_id,
    )


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidToken("malformed subject") from None
