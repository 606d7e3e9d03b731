"""Demo organizations, users and agreements (documented in the README), and CLI helpers."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlmodel import col

from agreements.models import Agreement, AgreementStatus
from api.db import commit, make_engine, make_sessionmaker
from api.locks import BOOTSTRAP, hold
from api.settings import Settings
from audit.sealer import seal_all
from audit.service import ChainReport, verify_chain
from auth.context import build_auth_context
from auth.models import User
from orgs.bootstrap import ensure_admin
from orgs.models import Organization
from rosters.models import Roster, Shift, SpecialistProfile

DEMO_PASSWORD = "liaison-demo-2026"
CIVILIAN, MILITARY = "Riverside General Hospital", "Joint Field Medical Command"
DEMO_USERS = {
    CIVILIAN: [
        ("civ-admin", ["org_admin"]),
        ("civ-coord", ["coordinator"]),
        ("civ-clinician", ["clinician"]),
        ("civ-specialist", ["specialist"]),
    ],
    MILITARY: [
        ("mil-admin", ["org_admin"]),
        ("mil-coord", ["coordinator"]),
        ("mil-clinician", ["clinician"]),
        ("mil-specialist", ["specialist"]),
    ],
}
CIV_TO_MIL = ["burns", "infectious-disease", "toxicology", "trauma-surgery"]
MIL_TO_CIV = ["paediatrics", "psychiatry", "radiology"]


DEMO_ENVIRONMENTS = ("development", "test")


class DemoRefused(Exception):
    """The demo's users have published passwords: never seeded where real patients could be."""


async def seed(settings: Settings) -> bool:
    """Create the demo data unless it is there already; True if created."""
    if settings.environment not in DEMO_ENVIRONMENTS:
        raise DemoRefused(
            f"liaison demo seeds users with published passwords; refused with LIAISON_ENVIRONMENT="
            f"{settings.environment} (only {' or '.join(DEMO_ENVIRONMENTS)})"
        )
    engine = make_engine(settings.database_url)
    ctx = build_auth_context(settings, None)
    try:
        async with make_sessionmaker(engine)() as session:
            await ensure_admin(
                session, ctx=ctx, username="admin", password=DEMO_PASSWORD, org_name=settings.admin_org_name
            )
            await hold(session, BOOTSTRAP)  # a second `liaison demo` at once waits, then finds it all there
            if (
                await session.execute(select(Organization).where(col(Organization.name) == CIVILIAN))
            ).first():
                return False
            civ, mil = (
                Organization(name=CIVILIAN, kind="civilian"),
                Organization(name=MILITARY, kind="military"),
            )
            session.add_all([civ, mil])
            await session.flush()
            digest = await ctx.passwords.hash(DEMO_PASSWORD)
            for org in (civ, mil):
                for username, roles in DEMO_USERS[org.name]:
                    session.add(
                        User(
                            org_id=org.id,
                            username=username,
                            roles=roles,
                            password_hash=digest,
                            display_name=username.replace("-", " ").title(),
                        )
                    )
            await session.flush()
            admin = (
                await session.execute(
                    select(User).where(col(User.org_id) == civ.id, col(User.username) == "civ-admin")
                )
            ).scalar_one()
            session.add_all(
                [_agreement(civ, mil, CIV_TO_MIL, admin), _agreement(mil, civ, MIL_TO_CIV, admin)]
            )
            await _on_call(session, mil, "mil-specialist", ["trauma-surgery", "burns"], ["en", "fr"])
            await _on_call(session, civ, "civ-specialist", ["paediatrics", "radiology"], ["en", "es"])
            await commit(session)
            return True
    finally:
        await engine.dispose()


def _agreement(
    requesting: Organization, providing: Organization, specialties: list[str], by: User
) -> Agreement:
    now = datetime.now(UTC)
    return Agreement(
        requesting_org_id=requesting.id,
        providing_org_id=providing.id,
        specialties=specialties,
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=365),
        status=AgreementStatus.active,
        proposed_by_org_id=by.org_id,
        created_by=by.id,
    )


async def _on_call(
    session, org: Organization, username: str, specialties: list[str], languages: list[str]
) -> None:
    """A profile, and a roster per specialty with this specialist on a 30-day tier-1 shift from now."""
    user = (
        await session.execute(select(User).where(col(User.org_id) == org.id, col(User.username) == username))
    ).scalar_one()
    session.add(
        SpecialistProfile(user_id=user.id, org_id=org.id, specialties=specialties, languages=languages)
    )
    now = datetime.now(UTC)
    for specialty in specialties:
        roster = Roster(
            org_id=org.id, specialty=specialty, name=f"{specialty.replace('-', ' ').title()} on call"
        )
        session.add(roster)
        await session.flush()
        session.add(
            Shift(
                roster_id=roster.id,
                org_id=org.id,
                specialist_id=user.id,
                tier=1,
                starts_at=now,
                ends_at=now + timedelta(days=30),
            )
        )


async def create_platform_admin(settings: Settings, username: str, password: str) -> bool:
    engine = make_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await ensure_admin(
                session,
                ctx=build_auth_context(settings, None),
                username=username,
                password=password,
                org_name=settings.admin_org_name,
            )
    finally:
        await engine.dispose()


async def verify_audit(settings: Settings) -> ChainReport:
    """Seal what is committed but not chained yet, then check the whole chain."""
    engine = make_engine(settings.database_url)
    try:
        sessions = make_sessionmaker(engine)
        await seal_all(sessions)
        async with sessions() as session:
            return await verify_chain(session)
    finally:
        await engine.dispose()
