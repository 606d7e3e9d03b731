"""What other domains do when a specialist may have come on call: available again, on a shift that
covers now or starts later, or allowed more consults at once.

The consult engine registers here from the app factory, so that rosters need not know about it.
"""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

OnCallHook = Callable[..., Awaitable[None]]
_on_call: list[OnCallHook] = []


def on_call(hook: OnCallHook) -> None:
    if hook not in _on_call:
        _on_call.append(hook)


async def came_on_call(
    session: AsyncSession, *, specialist_id: uuid.UUID, org_id: uuid.UUID, at: datetime
) -> None:
    """Run every hook inside the caller's transaction; `at`: from when (now, or a shift's start)."""
    for hook in _on_call:
        await hook(session, specialist_id=specialist_id, org_id=org_id, at=at)
