"""An org's escalation policy: acknowledgement windows by urgency."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from api.db import commit
from audit.service import record
from auth.principal import Actor
from auth.scope import ensure_own_org
from consults.escalation import DEFAULT_WINDOWS
from orgs.service import escalation_windows, set_escalation_windows


async def get_policy(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID) -> dict[str, int]:
    """The windows in force for the org (defaults filled in)."""
    ensure_own_org(actor, org_id)
    windows = await escalation_windows(session, org_id)
    await record(
        session, actor=actor, action="policy.read", org_id=org_id, resource_type="org", resource_id=org_id
    )
    await commit(session)
    return DEFAULT_WINDOWS | windows


async def set_policy(
    session: AsyncSession, *, actor: Actor, org_id: uuid.UUID, windows: dict[str, int]
) -> dict[str, int]:
    """Replace the org's windows."""
    ensure_own_org(actor, org_id)
    stored = await set_escalation_windows(session, org_id, windows)
    await record(
        session, actor=actor, action="policy.update", org_id=org_id, resource_type="org", resource_id=org_id
    )
    await commit(session)
    return DEFAULT_WINDOWS | stored
