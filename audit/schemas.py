"""Wire shape of audit events."""

import uuid
from datetime import datetime

from api.schemas import Out


class AuditEventOut(Out):
    id: int
    seq: int | None  # None until the row is sealed into the chain, about a second after it commits
    at: datetime
    actor_type: str
    actor_id: str | None
    actor_org_id: uuid.UUID | None
    org_id: uuid.UUID | None
    action: str
    resource_type: str | None
    resource_id: str | None
    outcome: str
    reason: str | None
    request_id: str | None
    client_addr: str | None
    hash: str | None
