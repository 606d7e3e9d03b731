"""What the webhook routes resolve: the org admin's permission, the settings, this node's worker."""

from fastapi import Request

from api.settings import Settings
from auth.dependencies import require
from auth.roles import Perm

manage = require(Perm.webhooks_manage)


async def settings(request: Request) -> Settings:
    return request.app.state.settings


async def wake_worker(request: Request) -> None:
    """After the response: this node's worker looks for due deliveries now, not at its next poll."""
    worker = getattr(request.app.state, "webhooks", None)
    if worker is not None:
        worker.wake()
