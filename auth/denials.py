"""Recording authorization refusals (auth's errors marked `denial`), which the error handler reports
here through app.state.on_denial (set by liaison.app)."""

import logging

from fastapi import Request

from audit.service import record_alone
from auth.principal import ANONYMOUS

log = logging.getLogger("liaison.audit")


async def record_denial(request: Request, exc: Exception) -> None:
    """One audit event per refused request; its own transaction, as the request's rolls back."""
    actor = getattr(request.state, "actor", None) or ANONYMOUS.with_request(
        getattr(request.state, "request_id", None), request.client.host if request.client else None
    )
    route = getattr(request.scope.get("route"), "path", request.url.path)
    resource_id = next(iter(request.path_params.values()), None)
    if (
        resource_id is not None
    ):  # unvalidated here: whatever the caller put in the path, cut to the column's size
        resource_id = str(resource_id)[:64]
    try:
        await record_alone(
            request.app.state.sessionmaker,
            actor=actor,
            action=f"{request.method} {route}"[:80],
            outcome="denied",
            org_id=actor.org_id,
            resource_id=resource_id,
            reason=getattr(exc, "code", "denied"),
        )
    except Exception:  # a refusal is still answered if the audit store is down; the log says so
        log.exception("could not record an authorization refusal")
