"""Recording authorization refusals (auth's errors marked `denial`), which the error handler reports
here through app.state.on_denial (set by liaison.app).

A refusal on another org's resource is filed under that org too, so its admin sees who probed it:
each path parameter that names a row is looked up for the org(s) owning it (`owned_by`). The owning
domains sit above auth, so liaison.app registers theirs."""

import logging
import uuid
from collections.abc import Mapping

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import commit
from audit.service import record
from auth.models import IdentityProvider, User
from auth.principal import ANONYMOUS, Caller

log = logging.getLogger("liaison.audit")
_OWNERS: dict[str, tuple] = {}


def owned_by(param: str, *columns) -> None:
    """Refusals on routes with `param` are filed under the org(s) held in `columns` of the row it names
    (columns of one model, keyed by `id`)."""
    _OWNERS[param] = columns


owned_by("user_id", User.org_id)
owned_by("idp_id", IdentityProvider.org_id)


async def record_denial(request: Request, exc: Exception) -> None:
    """One audit event per refused request and owning org; its own transaction, as the request's rolls back."""
    actor: Caller = getattr(request.state, "actor", None) or ANONYMOUS.with_request(
        getattr(request.state, "request_id", None), request.client.host if request.client else None
    )
    route = getattr(request.scope.get("route"), "path", request.url.path)
    resource_id = next(iter(request.path_params.values()), None)
    if (
        resource_id is not None
    ):  # unvalidated here: whatever the caller put in the path, cut to the column's size
        resource_id = str(resource_id)[:64]
    try:
        async with request.app.state.sessionmaker() as session:
            owners: list[uuid.UUID | None] = [*sorted(await _owners(session, request.path_params), key=str)]
            for org_id in owners or [actor.org_id]:
                await record(
                    session,
                    actor=actor,
                    action=f"{request.method} {route}"[:80],
                    outcome="denied",
                    org_id=org_id,
                    resource_id=resource_id,
                    reason=getattr(exc, "code", "denied"),
                )
            await commit(session)
    except Exception:  # a refusal is still answered if the audit store is down; the log says so
        log.exception("could not record an authorization refusal")


async def _owners(session: AsyncSession, path_params: Mapping[str, object]) -> set[uuid.UUID]:
    """The orgs owning the existing rows the path names; none for ids that name nothing."""
    owners: set[uuid.UUID] = set()
    for name, raw in path_params.items():
        if not (columns := _OWNERS.get(name)):
            continue
        try:
            value = uuid.UUID(str(raw))
        except ValueError:
            continue
        row = (await session.execute(select(*columns).where(columns[0].class_.id == value))).first()
        owners.update(org for org in row or () if org is not None)
    return owners
