"""From a bearer token to an Actor: our own users and clients, or an org's identity provider."""

import hashlib
import logging
import uuid

from jose import jwt
from sqlalchemy import Row, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.schemas import UNSTORABLE
from auth.context import AuthContext
from auth.exceptions import InvalidTokenError
from auth.jwks import keyring_from_jwks
from auth.jwks_fetch import JwksUnavailable
from auth.models import AuthSession, ExternalIdentity, IdentityProvider, IntegrationClient, User
from auth.principal import Actor
from auth.roles import CLIENT_SCOPES, Perm, perms_for_roles
from auth.tokens import InvalidToken, verify, within_lifetime

log = logging.getLogger("liaison.auth")
IDP_SESSIONS = uuid.UUID("5b0f3c1e-7a52-4e8e-9d0a-3f1c2b7e6a41")  # namespace of idp_session_id


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
    if not isinstance(iss, str) or UNSTORABLE.search(iss):  # PostgreSQL could not even compare it
        raise InvalidToken("no issuer")
    return iss


def _peek_kid(token: str) -> object:
    try:
        return jwt.get_unverified_header(token).get("kid")
    except Exception:
        raise InvalidToken("malformed token") from None


# Every authenticated request runs this: built once, and only the columns an Actor needs (no ORM rows).
_SIGNED_IN = (
    select(col(User.id), col(User.org_id), col(User.roles), col(User.is_active), col(AuthSession.revoked_at))
    .join(AuthSession, col(AuthSession.user_id) == col(User.id))
    .where(col(User.id) == bindparam("user_id"), col(AuthSession.id) == bindparam("session_id"))
)


async def _local(session: AsyncSession, ctx: AuthContext, token: str) -> Actor | None:
    s = ctx.settings
    claims = verify(
        token, ctx.keyring, audience=s.jwt_audience, issuer=s.jwt_issuer, typ="access", leeway=s.clock_leeway
    )
    within_lifetime(claims, s.access_token_ttl, s.clock_leeway)
    if "cid" in claims:
        return await _client(session, claims)
    user_id, session_id = _uuid(claims.get("sub")), _uuid(claims.get("sid"))
    row = (await session.execute(_SIGNED_IN, {"user_id": user_id, "session_id": session_id})).first()
    if row is None or row.revoked_at is not None or not row.is_active:
        return None
    if str(row.org_id) != claims.get("org"):
        return None
    return _user_actor(row, session_id)


async def _client(session: AsyncSession, claims: dict) -> Actor | None:
    client = await session.get(IntegrationClient, _uuid(claims.get("cid")))
    if client is None or not client.is_active or str(client.org_id) != claims.get("org"):
        return None
    granted = set(claims.get("scope", "").split()) if isinstance(claims.get("scope"), str) else set()
    perms = frozenset(Perm(p) for p in granted & set(client.scopes) if p in CLIENT_SCOPES)
    return Actor(kind="client", id=client.id, org_id=client.org_id, perms=perms)


async def _external(session: AsyncSession, ctx: AuthContext, token: str, issuer: str) -> Actor | None:
    """The one active registration of this issuer whose keys and audience verify the token and that
    links its subject decides the user, and so the org. Several orgs may register one issuer; a
    registration verifies only what its own keys signed and maps only to its own org's users, so no
    org can shadow another's. Two that both match are ambiguous, and sign in neither."""
    kid = _peek_kid(token)
    idps = (
        await session.execute(
            select(IdentityProvider)
            .where(col(IdentityProvider.issuer) == issuer, col(IdentityProvider.is_active))
            .order_by(col(IdentityProvider.created_at))
        )
    ).scalars()
    users = [user for idp in idps if (user := await _through(session, ctx, idp, token, kid)) is not None]
    if len(users) != 1:
        if users:
            log.warning("token of issuer %r matches %d registrations; refused", issuer, len(users))
        return None
    sid = idp_session_id(token)
    if await session.get(AuthSession, sid) is not None:  # signed out: the row records the revocation
        return None
    return _user_actor(users[0], sid)


async def _through(
    session: AsyncSession, ctx: AuthContext, idp: IdentityProvider, token: str, kid: object
) -> User | None:
    """The user this registration maps the token to, or None if it does not verify or map."""
    s = ctx.settings
    try:
        keyring = (
            await ctx.jwks.keyring(idp.id, idp.updated_at, idp.jwks_uri, kid=kid)
            if idp.jwks_uri
            else keyring_from_jwks(idp.jwks)
        )
        claims = verify(
            token,
            keyring,
            audience=idp.audience,
            issuer=idp.issuer,
            typ=None,
            leeway=s.clock_leeway,
            required=("exp", "iat", "iss", "aud", "sub"),
        )
        within_lifetime(claims, s.idp_token_max_lifetime, s.clock_leeway)
        if claims["exp"] - claims["iat"] > s.idp_token_max_lifetime + s.clock_leeway:
            raise InvalidToken("identity provider token lifetime above idp_token_max_lifetime")
    except (InvalidToken, JwksUnavailable):
        return None
    subject = claims["sub"]
    if not isinstance(subject, str) or UNSTORABLE.search(subject):
        return None
    user = (
        await session.execute(
            select(User)
            .join(ExternalIdentity, col(ExternalIdentity.user_id) == col(User.id))
            .where(col(ExternalIdentity.idp_id) == idp.id, col(ExternalIdentity.subject) == subject)
        )
    ).scalar_one_or_none()
    if user is None or not user.is_active or user.org_id != idp.org_id:
        return None
    return user


def idp_session_id(token: str) -> uuid.UUID:
    """An identity-provider token's sign-in id, derived from the token: no row exists for it until it is
    signed out, when one records the revocation (auth.service.logout)."""
    return uuid.uuid5(IDP_SESSIONS, hashlib.sha256(token.encode()).hexdigest())


def _user_actor(user: User | Row, session_id: uuid.UUID | None) -> Actor:
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
