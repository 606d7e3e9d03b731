"""Sign-in, refresh-token rotation and sign-out."""

import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import affected, commit
from audit.service import record
from auth.attempts import admit, succeeded
from auth.context import AuthContext
from auth.exceptions import InvalidCredentials, InvalidTokenError
from auth.models import AuthSession, RefreshToken, User
from auth.principal import Actor, Anonymous
from auth.schemas import TokenPair
from auth.tokens import InvalidToken, new_jti, verify
from events.control import session_ended

# Login without an org_id tries the password against at most this many users of the name.
MAX_NAMESAKES = 5


async def login(
    session: AsyncSession,
    *,
    ctx: AuthContext,
    actor: Anonymous,
    username: str,
    password: str,
    org_id: uuid.UUID | None = None,
) -> TokenPair:
    """Check a password, rate-limited per username and per address, and open a sign-in session."""
    user_key, addr_key = f"login:user:{username.lower()}", f"login:addr:{actor.client_addr}"
    await admit(
        session,
        ctx=ctx,
        actor=actor,
        action="auth.login",
        keys=(
            (user_key, ctx.settings.login_max_failures),
            (addr_key, ctx.settings.login_max_failures_per_address),
        ),
    )
    query = select(User).where(col(User.username) == username)
    if org_id is not None:
        query = query.where(col(User.org_id) == org_id)
    namesakes = list(
        (await session.execute(query.order_by(col(User.created_at)).limit(MAX_NAMESAKES))).scalars()
    )
    user = await _password_match(ctx, namesakes, password)
    if not (user and user.is_active):
        await record(
            session,
            actor=actor,
            action="auth.login",
            outcome="failure",
            org_id=namesakes[0].org_id if len(namesakes) == 1 else None,
            reason="bad_credentials",
        )
        await commit(session)
        raise InvalidCredentials()
    await succeeded(ctx, identity_key=user_key, address_key=addr_key)
    signin = AuthSession(user_id=user.id)
    session.add(signin)
    await session.flush()  # the refresh token row points at it
    pair = _issue_pair(session, ctx=ctx, user=user, session_id=signin.id)
    await record(
        session,
        actor=_as_user(actor, user),
        action="auth.login",
        org_id=user.org_id,
        resource_type="user",
        resource_id=user.id,
    )
    await commit(session)
    return pair


async def _password_match(ctx: AuthContext, namesakes: list[User], password: str) -> User | None:
    """The one user of that name whose password this is. Usernames are unique per org only, so a name
    may be several orgs'; without an org_id each is tried, and two that both match sign in neither."""
    if not namesakes:
        await ctx.passwords.verify(None, password)  # the same work as for a known name
        return None
    matches = [u for u in namesakes if await ctx.passwords.verify(u.password_hash, password)]
    return matches[0] if len(matches) == 1 else None


async def refresh(session: AsyncSession, *, ctx: AuthContext, actor: Anonymous, token: str) -> TokenPair:
    """Rotate a refresh token; presenting a used one revokes its whole family."""
    s = ctx.settings
    try:
        claims = verify(
            token,
            ctx.keyring,
            audience=s.jwt_audience,
            issuer=s.jwt_issuer,
            typ="refresh",
            leeway=s.clock_leeway,
        )
    except InvalidToken:
        raise InvalidTokenError() from None
    row = await session.get(RefreshToken, claims["jti"])
    signin = await session.get(AuthSession, row.session_id) if row else None
    if row is None or signin is None or row.token_hash != _digest(token) or signin.revoked_at is not None:
        raise InvalidTokenError()
    now = datetime.now(UTC)
    claimed = await session.execute(
        update(RefreshToken)
        .where(col(RefreshToken.jti) == row.jti, col(RefreshToken.used_at).is_(None))
        .values(used_at=now)
    )
    user = await session.get(User, signin.user_id)
    if user is None:  # the sign-in's user row is gone: nothing to refresh
        raise InvalidTokenError()
    if affected(claimed) != 1:
        await _revoke(session, signin.id, "refresh_reuse")
        session_ended(session, signin.id, "Refresh token reused: the sign-in was revoked")
        await record(
            session,
            actor=_as_user(actor, user),
            action="auth.refresh",
            outcome="denied",
            org_id=user.org_id,
            reason="refresh_token_reuse",
        )
        await commit(session)
        raise InvalidTokenError("Refresh token already used; the sign-in session is revoked")
    if not user.is_active:
        raise InvalidTokenError()
    pair = _issue_pair(session, ctx=ctx, user=user, session_id=signin.id)
    await record(
        session,
        actor=_as_user(actor, user),
        action="auth.refresh",
        org_id=user.org_id,
        resource_type="user",
        resource_id=user.id,
    )
    await commit(session)
    return pair


async def logout(session: AsyncSession, *, actor: Actor) -> None:
    """Revoke the caller's sign-in session: its access and refresh tokens stop working."""
    if actor.session_id is not None:
        revoked = await _revoke(session, actor.session_id, "logout")
        # An identity provider's token has no sign-in row (auth.identity.idp_session_id): its revocation
        # is one, refused from now on, while the IdP may still consider the token valid.
        if not revoked and await session.get(AuthSession, actor.session_id) is None:
            now = datetime.now(UTC)
            session.add(
                AuthSession(id=actor.session_id, user_id=actor.id, revoked_at=now, revoked_reason="logout")
            )
        session_ended(session, actor.session_id, "Signed out")
    await record(
        session,
        actor=actor,
        action="auth.logout",
        org_id=actor.org_id,
        resource_type="user",
        resource_id=actor.id,
    )
    await commit(session)


async def revoke_user_sessions(session: AsyncSession, *, user_id: uuid.UUID, reason: str) -> None:
    """Revoke every open sign-in of a user (disabling them); the caller commits."""
    await session.execute(
        update(AuthSession)
        .where(col(AuthSession.user_id) == user_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=datetime.now(UTC), revoked_reason=reason)
    )


async def _revoke(session: AsyncSession, session_id: uuid.UUID, reason: str) -> bool:
    """Revoke one open sign-in; False if there was none open by that id."""
    done = await session.execute(
        update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=datetime.now(UTC), revoked_reason=reason)
    )
    return affected(done) == 1


def mint_access(ctx: AuthContext, *, sub: str, org_id: uuid.UUID, extra: dict) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    s, now = ctx.settings, int(time.time())
    claims = {
        "iss": s.jwt_issuer,
        "aud": s.jwt_audience,
        "sub": sub,
        "iat": now,
        "nbf": now,
        "exp": now + s.access_token_ttl,
        "jti": new_jti(),
        "typ": "access",
        "org": str(org_id),
    } | extra
    return ctx.signer.sign(claims), s.access_token_ttl


def _issue_pair(session: AsyncSession, *, ctx: AuthContext, user: User, session_id: uuid.UUID) -> TokenPair:
    s, now = ctx.settings, int(time.time())
    access, ttl = mint_access(ctx, sub=str(user.id), org_id=user.org_id, extra={"sid": str(session_id)})
    jti = new_jti()
    refresh_token = ctx.signer.sign(
        {
            "iss": s.jwt_issuer,
            "aud": s.jwt_audience,
            "sub": str(user.id),
            "iat": now,
            "nbf": now,
            "exp": now + s.refresh_token_ttl,
            "jti": jti,
            "typ": "refresh",
            "sid": str(session_id),
        }
    )
    session.add(
        RefreshToken(
            jti=jti,
            session_id=session_id,
            token_hash=_digest(refresh_token),
            expires_at=datetime.now(UTC) + timedelta(seconds=s.refresh_token_ttl),
        )
    )
    return TokenPair(access_token=access, refresh_token=refresh_token, expires_in=ttl)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _as_user(actor: Anonymous, user: User) -> Actor:
    return Actor(
        kind="user",
        id=user.id,
        org_id=user.org_id,
        roles=frozenset(user.roles),
        request_id=actor.request_id,
        client_addr=actor.client_addr,
    )
