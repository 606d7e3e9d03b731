"""The hash of an audit event: every field that matters, in one canonical form."""

import hashlib
import json

from audit.models import AuditEvent

HASHED_FIELDS = (
    "seq",
    "actor_type",
    "actor_id",
    "actor_org_id",
    "org_id",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "reason",
    "request_id",
    "client_addr",
)


def event_hash(event: AuditEvent, prev_hash: str) -> str:
    payload = {name: _plain(getattr(event, name)) for name in HASHED_FIELDS}
    payload["at"] = event.at.strftime("%Y-%m-%dT%H:%M:%S.%f")
    payload["prev"] = prev_hash
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _plain(value):
    return None if value is None else (value if isinstance(value, (int, str)) else str(value))
