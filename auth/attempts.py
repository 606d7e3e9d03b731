"""Guessing limits for sign-in and the client-credentials grant."""

from sqlalchemy.ext.asyncio import AsyncSession

from api.db import commit
from api.errors import TooManyRequests
from audit.service import record
from auth.context import AuthContext
from auth.principal import Caller


async def admit(
    session: AsyncSession, *, ctx: AuthContext, actor: Caller, action: str, keys: tuple[tuple[str, int], ...]
) -> None:
    """Count the attempt as a failure before it is judged, so that simultaneous guesses cannot all
    pass the check; past a key's limit, 429. A success takes its count back (see `succeeded`)."""
    for key, limit in keys:
        if (wait := await ctx.limiter.retry_after(key, limit)) is not None:
            raise await _refused(session, actor, action, wait)
    for key, limit in keys:
        if await ctx.limiter.fail(key) > limit:
            raise await _refused(session, actor, action, await ctx.limiter.retry_after(key, limit) or 1)


async def succeeded(ctx: AuthContext, *, identity_key: str, address_key: str) -> None:
    """The identity's count starts over; the address gets this one attempt back."""
    await ctx.limiter.clear(identity_key)
    await ctx.limiter.forgive(address_key)


async def _refused(session: AsyncSession, actor: Caller, action: str, wait: int) -> TooManyRequests:
    await record(session, actor=actor, action=action, outcome="denied", reason="rate_limited")
    await commit(session)
    return TooManyRequests(wait)
