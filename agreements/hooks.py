"""What other domains do when an agreement stops counting (suspended or revoked).

The consult engine registers here from the app factory, so that agreements need not know about it.
"""

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

BoundaryHook = Callable[..., Awaitable[None]]
_closed: list[BoundaryHook] = []


def on_closed(hook: BoundaryHook) -> None:
    if hook not in _closed:
        _closed.append(hook)


async def boundary_closed(
    session: AsyncSession, *, requesting_org_id: uuid.UUID, providing_org_id: uuid.UUID
) -> None:
    """Run every hook inside the caller's transaction."""
    for hook in _closed:
        await hook(session, requesting_org_id=requesting_org_id, providing_org_id=providing_org_id)
