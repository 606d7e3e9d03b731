"""An integration client acting on behalf of a person of its org (a consult requested through an EHR)."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from auth.exceptions import Hidden, NotClinician
from auth.models import User
from auth.principal import Actor
from auth.roles import Role, perms_for_roles


async def clinician_for(session: AsyncSession, *, actor: Actor, user_id: uuid.UUID) -> Actor:
    """The named clinician of the client's own org, as an Actor; another org's user (or none) is a 404."""
    user = await session.get(User, user_id)
    if user is None or user.org_id != actor.org_id:
        raise Hidden()
    if not user.is_active or Role.clinician not in user.roles:
        raise NotClinician()
    return Actor(
        kind="user",
        id=user.id,
        org_id=user.org_id,
        roles=frozenset(user.roles),
        perms=perms_for_roles(user.roles),
        request_id=actor.request_id,
        client_addr=actor.client_addr,
    )
