"""Organizations and their users; admins of one org manage that org's users and nothing else."""

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit, insert_unique
from api.schemas import PageParams
from audit.service import record
from auth.context import AuthContext
from auth.exceptions import Hidden
from auth.models import User
from auth.principal import Actor
from auth.roles import Perm
from auth.scope import ensure_own_org
from auth.service import revoke_user_sessions
from events.control import roles_changed, user_ended
from orgs.exceptions import FirstAdminOnly, NameTaken, RoleNotGrantable, UsernameTaken
from orgs.hooks import user_disabled
from orgs.models import Organization
from orgs.schemas import GRANTABLE, UserPatch


async def create_org(session: AsyncSession, *, actor: Actor, name: str, kind: str) -> Organization:
    """Create an organization (platform admins only, checked by the route)."""
    org = Organization(name=name, kind=kind)
    await insert_unique(session, org, NameTaken("An organization with that name exists"))
    await record(
        session, actor=actor, action="org.create", org_id=org.id, resource_type="org", resource_id=org.id
    )
    await commit(session)
    return org


async def list_orgs(
    session: AsyncSession, *, actor: Actor, kind: str | None, page: PageParams
) -> list[Organization]:
    """The directory of organizations, so admins can find partners for agreements."""
    query = select(Organization).order_by(Organization.name)
    if kind:
        query = query.where(col(Organization.kind) == kind)
    rows = (await session.execute(query.limit(page.limit + 1).offset(page.offset))).scalars().all()
    await record(session, actor=actor, action="org.list", org_id=actor.org_id, resource_type="org")
    await commit(session)
    return list(rows)


async def get_org(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID) -> Organization:
    """One organization's directory entry."""
    org = await _get_org(session, org_id)
    await record(
        session, actor=actor, action="org.read", org_id=org.id, resource_type="org", resource_id=org.id
    )
    await commit(session)
    return org


async def create_user(
    session: AsyncSession,
    *,
    ctx: AuthContext,
    actor: Actor,
    org_id: uuid.UUID,
    username: str,
    password: str | None,
    display_name: str,
    roles: list[str],
) -> User:
    """Add a user to an org (its admin, or the platform admin bootstrapping a new org)."""
    if not (actor.can(Perm.users_manage) and actor.org_id == org_id):
        ensure_own_org(actor, org_id, platform_admin_ok=True)
        await _first_admin(session, org_id, roles)
    user = User(
        org_id=org_id,
        username=username,
        display_name=display_name,
        roles=_grantable(roles),
        password_hash=await ctx.passwords.hash(password) if password else None,
    )
    await insert_unique(session, user, UsernameTaken())
    await record(
        session, actor=actor, action="user.create", org_id=org_id, resource_type="user", resource_id=user.id
    )
    await commit(session)
    return user


async def list_users(
    session: AsyncSession, *, actor: Actor, org_id: uuid.UUID, role: str | None, page: PageParams
) -> list[User]:
    """The org's users, optionally those holding one role."""
    ensure_own_org(actor, org_id)
    rows = (
        (await session.execute(select(User).where(col(User.org_id) == org_id).order_by(User.username)))
        .scalars()
        .all()
    )
    matching = [u for u in rows if role is None or role in u.roles]  # roles live in a JSON list
    await record(session, actor=actor, action="user.list", org_id=org_id, resource_type="user")
    await commit(session)
    return matching[page.offset : page.offset + page.limit + 1]


async def update_user(
    session: AsyncSession,
    *,
    ctx: AuthContext,
    actor: Actor,
    org_id: uuid.UUID,
    user_id: uuid.UUID,
    patch: UserPatch,
) -> User:
    """Change a user's name, password, roles or status; disabling also ends their sign-ins."""
    ensure_own_org(actor, org_id)
    user = await session.get(User, user_id)
    if user is None or user.org_id != org_id:
        raise Hidden()
    if patch.display_name is not None:
        user.display_name = patch.display_name
    if patch.password is not None:
        # A reset is what an admin does when the password may be known to someone else: whoever
        # signed in with it is signed out (refresh tokens refused, open sockets closed).
        user.password_hash = await ctx.passwords.hash(patch.password)
        await revoke_user_sessions(session, user_id=user.id, reason="password_reset")
        user_ended(session, user.id, "Your password was reset")
    if patch.roles is not None and _grantable(patch.roles) != sorted(user.roles):
        user.roles = _grantable(patch.roles)
        roles_changed(session, user.id)  # open sockets drop (or gain) what the old roles reached
    if patch.is_active is False and user.is_active:
        await revoke_user_sessions(session, user_id=user.id, reason="disabled")
        user_ended(session, user.id, "Your account was disabled")
        user_disabled(session, user_id=user.id)
    if patch.is_active is not None:
        user.is_active = patch.is_active
    user.updated_at = datetime.now(UTC)
    await record(
        session, actor=actor, action="user.update", org_id=org_id, resource_type="user", resource_id=user.id
    )
    await commit(session)
    return user


async def escalation_windows(session: AsyncSession, org_id: uuid.UUID) -> dict[str, int]:
    """The org's own escalation windows by urgency, none for defaults (consults.policy checks the caller,
    audits and fills the defaults in)."""
    org = await _get_org(session, org_id)
    return org.escalation_windows or {}


async def set_escalation_windows(
    session: AsyncSession, org_id: uuid.UUID, windows: dict[str, int]
) -> dict[str, int]:
    """Replace the org's escalation windows, in the caller's transaction; what is stored."""
    org = await _get_org(session, org_id)
    org.escalation_windows = dict(windows)
    return org.escalation_windows


async def _first_admin(session: AsyncSession, org_id: uuid.UUID, roles: list[str]) -> None:
    """The platform admin may give an org an admin while it has no active one, and nothing else."""
    query = select(Organization).where(col(Organization.id) == org_id).with_for_update()
    if (await session.execute(query)).scalar_one_or_none() is None:
        raise Hidden()
    if sorted(set(roles)) != ["org_admin"]:
        raise FirstAdminOnly("Create the organization's admin (roles: org_admin); they add everyone else")
    members = (
        await session.execute(select(User).where(col(User.org_id) == org_id, col(User.is_active)))
    ).scalars()
    if any("org_admin" in u.roles for u in members):
        raise FirstAdminOnly("The organization has an admin: its users are theirs to manage")


async def _get_org(session: AsyncSession, org_id: uuid.UUID) -> Organization:
    org = await session.get(Organization, org_id)
    if org is None:
        raise Hidden()
    return org


def _grantable(roles: list[str]) -> list[str]:
    bad = sorted(set(roles) - set(GRANTABLE))
    if bad:
        raise RoleNotGrantable(f"Roles that cannot be granted: {', '.join(bad)}")
    return sorted(set(roles))


async def get_user(session: AsyncSession, *, actor: Actor, user_id: uuid.UUID) -> User:
    """One user of the actor's own org; any other is 404, as if it did not exist."""
    user = await session.get(User, user_id)
    if user is None or user.org_id != actor.org_id:
        raise Hidden()
    await record(
        session,
        actor=actor,
        action="user.read",
        org_id=user.org_id,
        resource_type="user",
        resource_id=user.id,
    )
    await commit(session)
    return user
