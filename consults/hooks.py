"""What other domains do when a consult's calls must end: all of them (the consult was cancelled or
completed, or the agreement they depended on ended), or one person's part in them (the specialist
a consult was reassigned away from). Signaling ends them, and keeps new call tokens out.

Signaling registers here from the app factory (liaison.app), so that consults need not know about
it. The hooks only stage work for the caller's commit, so they are plain functions, not coroutines.
"""

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

CallsHook = Callable[..., None]
_ended: list[CallsHook] = []
_removed: list[CallsHook] = []


def on_calls_ended(hook: CallsHook) -> None:
    if hook not in _ended:
        _ended.append(hook)


def on_removed_from_calls(hook: CallsHook) -> None:
    if hook not in _removed:
        _removed.append(hook)


def calls_ended(session: AsyncSession, *, consult_id: uuid.UUID, reason: str) -> None:
    """Run every hook inside the caller's transaction: the consult's calls end for everyone in them."""
    for hook in _ended:
        hook(session, consult_id=consult_id, reason=reason)


def removed_from_calls(
    session: AsyncSession, *, consult_id: uuid.UUID, user_id: uuid.UUID, reason: str
) -> None:
    """Run every hook inside the caller's transaction: this user's place in the consult's calls ends."""
    for hook in _removed:
        hook(session, consult_id=consult_id, user_id=user_id, reason=reason)
