"""The platform admin and its operator org: the one the environment names, created at start, and
those of `liaison create-admin` and the demo."""

import logging

from fastapi import FastAPI
from sqlalchemy import select
from sqlmodel import col

from api.db import commit
from api.locks import BOOTSTRAP, hold
from auth.models import User
from orgs.models import Organization, OrgKind

log = logging.getLogger("liaison.auth")  # where operators have always found this line


async def on_startup(app: FastAPI) -> None:
    """Create the platform admin named by the environment, if any (after auth's start-up: it needs the auth context)."""
    s = app.state.settings
    if s.admin_username and s.admin_password:
        async with app.state.sessionmaker() as session:
            await ensure_admin(
                session,
                ctx=app.state.auth,
                username=s.admin_username,
                password=s.admin_password,
                org_name=s.admin_org_name,
            )


async def ensure_admin(session, *, ctx, username: str, password: str, org_name: str) -> bool:
    """Create a platform admin (and its operator org) unless the org has that username; True if created."""
    # Every node runs this at start, at the same moment on a fresh deploy: one at a time, each
    # deciding on what the one before committed (else two both insert the org and one dies).
    await hold(session, BOOTSTRAP)
    org = (
        await session.execute(select(Organization).where(col(Organization.name) == org_name))
    ).scalar_one_or_none()
    if (
        org is not None
        and (
            await session.execute(
                select(User).where(col(User.org_id) == org.id, col(User.username) == username)
            )
        ).scalar_one_or_none()
    ):
        return False  # usernames are per org: the same name in another org is someone else
    if org is None:
        org = Organization(name=org_name, kind=OrgKind.government)
        session.add(org)
        await session.flush()
    session.add(
        User(
            org_id=org.id,
            username=username,
            display_name="Platform administrator",
            password_hash=await ctx.passwords.hash(password),
            roles=["platform_admin"],
        )
    )
    await commit(session)
    log.info("created platform admin %s", username)
    return True
