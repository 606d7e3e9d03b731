"""Reading the audit trail."""

from collections.abc import Callable

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import get_session
from api.schemas import Page, PageParams, make_page, page_params
from audit import service
from audit.schemas import AuditEventOut
from audit.service import Actor


def build(reader: Callable) -> APIRouter:
    """The trail's routes, behind `reader`: the dependency that lets through those who may read it.
    Audit sits below auth, so liaison.app hands auth's in (require(Perm.audit_read))."""
    router = APIRouter(tags=["audit"])

    @router.get("/audit", response_model=Page[AuditEventOut], operation_id="listAuditEvents")
    async def list_audit(
        action: str | None = Query(None, max_length=80),
        resource_type: str | None = Query(None, max_length=40),
        since: AwareDatetime | None = None,
        until: AwareDatetime | None = None,
        page: PageParams = Depends(page_params),
        actor: Actor = Depends(reader),
        session: AsyncSession = Depends(get_session),
    ):
        """Audit events about the caller's org's data, newest first, including partner orgs' reads of it."""
        rows = await service.list_events(
            session,
            actor=actor,
            action=action,
            resource_type=resource_type,
            since=since,
            until=until,
            limit=page.limit + 1,
            offset=page.offset,
        )
        return make_page(rows, page, lambda row: row)

    return router
