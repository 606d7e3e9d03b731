"""FHIR reads and the one FHIR write, each through the owning domain's own service, so the
boundary (what an actor may see, across orgs) and the audit row are exactly the REST API's."""

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas import PageParams
from auth.principal import Actor
from consults import messages, steps
from consults import service as consults
from consults.access import View
from consults.models import Consult
from fhir import codes, directory, resources
from fhir.bundle import searchset
from fhir.exceptions import BadSearch
from fhir.intake import ServiceRequestIn, consult_in
from fhir.resources import Resource
from fhir.search import Query, consult_conditions, instant_param
from orgs import service as orgs
from rosters import service as rosters


async def search_consults(session: AsyncSession, *, actor: Actor, kind: str, q: Query) -> Resource:
    """ServiceRequest or Task search over the consults the actor may list."""
    table = codes.REQUEST_STATUS if kind == "ServiceRequest" else codes.TASK_STATUS
    where, page = consult_conditions(q, table=table), q.page()
    q.done()
    rows = await consults.list_consults(
        session, actor=actor, status=None, specialty=None, urgency=None, page=page, narrow=where
    )
    # Listing shows only consults the actor requested, was assigned or queues: all in full view.
    return _bundle(kind, await _consults_as(session, kind, [(c, True) for c in rows]), q, page)


async def read_consult(session: AsyncSession, *, actor: Actor, kind: str, consult_id: uuid.UUID) -> Resource:
    """One ServiceRequest or Task: all of it to participants, the triage summary to one offered it."""
    consult, view = await consults.get(session, actor=actor, consult_id=consult_id)
    return (await _consults_as(session, kind, [(consult, view is View.full)]))[0]


async def _consults_as(session: AsyncSession, kind: str, rows: list[tuple[Consult, bool]]) -> list[Resource]:
    if kind == "ServiceRequest":
        return [resources.service_request(c, full=full) for c, full in rows]
    due = await steps.deadlines(session, [c for c, _ in rows])
    return [resources.task(c, full=full, deadline=due.get(c.id)) for c, full in rows]


async def create_request(session: AsyncSession, *, actor: Actor, body: ServiceRequestIn) -> Resource:
    """A POSTed ServiceRequest becomes a consult, routed as any other."""
    consult, _ = await consults.create(session, actor=actor, data=consult_in(body), idempotency_key=None)
    return resources.service_request(consult, full=True)


async def search_thread(session: AsyncSession, *, actor: Actor, q: Query) -> Resource:
    """Communication search: one consult's thread (`based-on` or `part-of` names it)."""
    target = q.take("based-on", "part-of")
    if not target:
        raise BadSearch("Communication search needs based-on=ServiceRequest/{id} (or part-of=Task/{id})")
    consult_id = _id_in(target)
    page = q.page()
    q.done()
    rows = await messages.thread(session, actor=actor, consult_id=consult_id, page=page)
    return _bundle("Communication", [resources.communication(m) for m, _ in rows], q, page)


def _bundle(kind: str, built: list[Resource], q: Query, page: PageParams) -> Resource:
    """Services fetch one row past the page: it only says a next page exists."""
    more = len(built) > page.limit
    shown = built[: page.limit]
    return searchset(kind, shown, query=q.echo(), count=page.limit, offset=page.offset, more=more)


def _id_in(reference: str) -> uuid.UUID:
    try:
        return uuid.UUID(reference.rsplit("/", 1)[-1])
    except ValueError:
        raise BadSearch(f"Not a reference to a consult: {reference[:60]}") from None


async def read_message(session: AsyncSession, *, actor: Actor, message_id: uuid.UUID) -> Resource:
    return resources.communication(await messages.read(session, actor=actor, message_id=message_id))


async def search_roles(session: AsyncSession, *, actor: Actor, q: Query) -> Resource:
    """PractitionerRole search: who of the actor's org is on call, for which specialty, at `date`."""
    specialty = q.take("specialty")
    at, page = instant_param(q, "date"), q.page()
    q.done()
    code = specialty.split("|", 1)[-1] if specialty else None
    rows = await rosters.on_call_anywhere(session, actor=actor, specialty=code, at=at, page=page)
    built = [directory.practitioner_role(s, specialty=sp, profile=p, at=at) for s, sp, p in rows]
    return _bundle("PractitionerRole", built, q, page)


async def search_orgs(session: AsyncSession, *, actor: Actor, q: Query) -> Resource:
    """Organization search: the directory, as GET /orgs lists it."""
    kind = q.take("type")
    page = q.page()
    q.done()
    kind = kind.split("|", 1)[-1] if kind else None
    rows = await orgs.list_orgs(session, actor=actor, kind=kind, page=page)
    return _bundle("Organization", [directory.organization(o) for o in rows], q, page)


async def read_org(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID) -> Resource:
    return directory.organization(await orgs.get_org(session, actor=actor, org_id=org_id))


async def search_people(session: AsyncSession, *, actor: Actor, q: Query) -> Resource:
    """Practitioner search: the actor's own org's users, as GET /orgs/{id}/users lists them."""
    page = q.page()
    q.done()
    rows = await orgs.list_users(session, actor=actor, org_id=actor.org_id, role=None, page=page)
    return _bundle("Practitioner", [directory.practitioner(u) for u in rows], q, page)


async def read_person(session: AsyncSession, *, actor: Actor, user_id: uuid.UUID) -> Resource:
    return directory.practitioner(await orgs.get_user(session, actor=actor, user_id=user_id))
