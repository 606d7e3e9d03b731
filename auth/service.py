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


async def login(
    session: AsyncSession, *, ctx: AuthContext, actor: Anonymous, username: str, password: str
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
    user = (await session.execute(select(User).where(col(User.username) == username))).scalar_one_or_none()
    ok = await ctx.passwords.verify(user.password_hash if user else None, password)
    if not (ok and user and user.is_active):
        await record(
            session,
            actor=actor,
            action="auth.login",
            outcome="failure",
            org_id=user.org_id if user else None,
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
        await _revoke(session, actor.session_id, "logout")
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


async def _revoke(session: AsyncSession, session_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        update(AuthSession)
        .where(col(AuthSession.id) == session_id, col(AuthSession.revoked_at).is_(None))
        .values(revoked_at=datetime.now(UTC), revoked_reason=reason)
    )


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
