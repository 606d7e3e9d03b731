"""Endpoints, deliveries and attempts as the API takes and shows them."""

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import Field

from api.schemas import Bool, Out, Strict


class EventType(StrEnum):
    """What an endpoint may subscribe to; each is derived from the stored event log (webhooks.derive)."""

    consult_created = "consult.created"
    consult_offered = "consult.offered"
    consult_accepted = "consult.accepted"
    consult_escalated = "consult.escalated"
    consult_unassigned = "consult.unassigned"
    consult_completed = "consult.completed"
    consult_cancelled = "consult.cancelled"
    message_created = "message.created"
    call_started = "call.started"
    call_ended = "call.ended"


URL_MAX, TYPES_MAX = 2000, len(EventType)


class EndpointIn(Strict):
    url: str = Field(min_length=8, max_length=URL_MAX)
    event_types: list[EventType] = Field(min_length=1, max_length=TYPES_MAX)
    description: str = Field(default="", max_length=500)
    include_clinical: Bool = Field(
        default=False, description="true: payloads carry clinical text (question, details, message bodies)"
    )


class EndpointPatch(Strict):
    url: str | None = Field(default=None, min_length=8, max_length=URL_MAX)
    event_types: list[EventType] | None = Field(default=None, min_length=1, max_length=TYPES_MAX)
    description: str | None = Field(default=None, max_length=500)
    include_clinical: Bool | None = None
    enabled: Bool | None = Field(default=None, description="true re-enables an endpoint, resuming its feed")


class EndpointOut(Out):
    id: uuid.UUID
    org_id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    include_clinical: bool
    enabled: bool
    disabled_reason: str | None
    consecutive_failures: int
    previous_secret_until: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="whsec_…: shown only in this answer")


class AttemptOut(Out):
    attempt: int
    manual: bool
    at: datetime
    status_code: int | None
    latency_ms: float | None
    error: str | None
    retry_in_seconds: float | None


class DeliveryOut(Out):
    id: uuid.UUID
    webhook_id: str
    endpoint_id: uuid.UUID
    seq: int
    position: int
    type: str
    consult_id: uuid.UUID | None
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict


class DeliveryDetail(DeliveryOut):
    attempt_log: list[AttemptOut]
