"""What other domains do when a user is disabled (beyond ending their sign-ins and sockets, which
orgs orders itself): signaling marks that they may join no call.

Signaling registers here from the app factory (liaison.app), so that orgs need not know about it.
The hooks only stage work for the caller's commit, so they are plain functions, not coroutines.
"""

import uuid
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

DisabledHook = Callable[..., None]
_disabled: list[DisabledHook] = []


def on_user_disabled(hook: DisabledHook) -> None:
    if hook not in _disabled:
        _disabled.append(hook)


def user_disabled(session: AsyncSession, *, user_id: uuid.UUID) -> None:
    """Run every hook inside the caller's transaction."""
    for hook in _disabled:
        hook(session, user_id=user_id)
