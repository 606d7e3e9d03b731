"""FHIR R4 routes under /fhir/R4: thin, each one call into fhir.service."""

import uuid
from importlib.metadata import version

from fastapi import APIRouter, Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import get_session
from auth.dependencies import current_actor, require
from auth.principal import Actor
from auth.roles import Perm
from fhir import capability, codes, service
from fhir.edge import FhirResponse
from fhir.intake import ServiceRequestIn
from fhir.search import Query

# FHIR clients learn this server from its CapabilityStatement (/metadata), in FHIR's own terms; the
# OpenAPI document describes /api/v1, whose errors are problem+json, not OperationOutcome.
router = APIRouter(
    prefix=codes.BASE, tags=["fhir"], default_response_class=FhirResponse, include_in_schema=False
)


def query(request: Request) -> Query:
    # A repeated parameter is one value FHIR would AND; we take the first and refuse none silently.
    return Query(dict(request.query_params))


@router.get("/metadata")
async def metadata() -> FhirResponse:
    """The CapabilityStatement."""
    return FhirResponse(capability.statement(version("liaison")))


@router.get("/ServiceRequest")
async def search_requests(
    q: Query = Depends(query),
    actor: Actor = Depends(current_actor),
    session: AsyncSession = Depends(get_session),
) -> FhirResponse:
    """Consults as ServiceRequests: status, patient, performer-type/specialty, authored, priority."""
    return FhirResponse(await service.search_consults(session, actor=actor, kind="ServiceRequest", q=q))


@router.get("/ServiceRequest/{consult_id}")
async def read_request(
    consult_id: uuid.UUID, actor: Actor = Depends(current_actor), session: AsyncSession = Depends(get_session)
) -> FhirResponse:
    """One consult as a ServiceRequest."""
    return FhirResponse(
        await service.read_consult(session, actor=actor, kind="ServiceRequest", consult_id=consult_id)
    )


@router.post("/ServiceRequest", status_code=201)
async def create_request(
    body: ServiceRequestIn,
    actor: Actor = Depends(require(Perm.consults_create)),
    session: AsyncSession = Depends(get_session),
) -> FhirResponse:
    """Request a consult as a ServiceRequest; it is stored and routed as POST /api/v1/consults would."""
    created = await service.create_request(session, actor=actor, body=body)
    location = f"{codes.BASE}/ServiceRequest/{created['id']}"
    return FhirResponse(created, status_code=201, headers={"Location": location})


@router.get("/Task")
async def search_tasks(
    q: Query = Depends(query),
    actor: Actor = Depends(current_actor),
    session: AsyncSession = Depends(get_session),
) -> FhirResponse:
    """Consults' workflow state as Tasks: status, owner, focus, patient, authored-on."""
    return FhirResponse(await service.search_consults(session, actor=actor, kind="Task", q=q))


@router.get("/Task/{consult_id}")
async def read_task(
    consult_id: uuid.UUID, actor: Actor = Depends(current_actor), session: AsyncSession = Depends(get_session)
) -> FhirResponse:
    """One consult's workflow state as a Task."""
    return FhirResponse(await service.read_consult(session, actor=actor, kind="Task", consult_id=consult_id))


@router.get("/Communication")
async def search_thread(
    q: Query = Depends(query),
    actor: Actor = Depends(current_actor),
    session: AsyncSession = Depends(get_session),
) -> FhirResponse:
    """A consult's thread as Communications (based-on=ServiceRequest/{id})."""
    return FhirResponse(await service.search_thread(session, actor=actor, q=q))


@router.get("/Communication/{message_id}")
async def read_message(
    message_id: uuid.UUID, actor: Actor = Depends(current_actor), session: AsyncSession = Depends(get_session)
) -> FhirResponse:
    """One message of a thread."""
    return FhirResponse(await service.read_message(session, actor=actor, message_id=message_id))


@router.get("/PractitionerRole")
async def search_roles(
    q: Query = Depends(query),
    actor: Actor = Depends(require(Perm.rosters_read)),
    session: AsyncSession = Depends(get_session),
) -> FhirResponse:
    """Who of the caller's org is on call, by specialty, at a date (now by default)."""
    return FhirResponse(await service.search_roles(session, actor=actor, q=q))


@router.get("/Organization")
async def search_orgs(
    q: Query = Depends(query),
    actor: Actor = Depends(current_actor),
    session: AsyncSession = Depends(get_session),
) -> FhirResponse:
    """The directory of organizations."""
    return FhirResponse(await service.search_orgs(session, actor=actor, q=q))


@router.get("/Organization/{org_id}")
async def read_org(
    org_id: uuid.UUID, actor: Actor = Depends(current_actor), session: AsyncSession = Depends(get_session)
) -> FhirResponse:
    """One organization."""
    return FhirResponse(await service.read_org(session, actor=actor, org_id=org_id))


@router.get("/Practitioner")
async def search_people(
    q: Query = Depends(query),
    actor: Actor = Depends(require(Perm.users_read)),
    session: AsyncSession = Depends(get_session),
) -> FhirResponse:
    """The caller's own org's practitioners."""
    return FhirResponse(await service.search_people(session, actor=actor, q=q))


@router.get("/Practitioner/{user_id}")
async def read_person(
    user_id: uuid.UUID,
    actor: Actor = Depends(require(Perm.users_read)),
    session: AsyncSession = Depends(get_session),
) -> FhirResponse:
    """One practitioner of the caller's own org."""
    return FhirResponse(await service.read_person(session, actor=actor, user_id=user_id))
