"""The organization boundary for org-addressed routes."""

import uuid

from auth.exceptions import Hidden
from auth.principal import Actor


def ensure_own_org(actor: Actor, org_id: uuid.UUID, *, platform_admin_ok: bool = False) -> None:
    """Another org's resources answer 404, exactly as missing ones do."""
    if actor.org_id == org_id or (platform_admin_ok and actor.is_platform_admin):
        return
    raise Hidden()
