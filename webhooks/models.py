"""An org's endpoints, one delivery per (endpoint, event), and every attempt at sending one.

An endpoint's `cursor` is the event-log position it has been fed up to: deliveries are derived from
the stored log in the same transaction that moves it, so a crash or a Redis outage loses nothing,
and a delivery's unique `event_key` keeps an event stored on several channels to one delivery."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, BigInteger, Index, UniqueConstraint
from sqlmodel import Column, Field, SQLModel

from api.models import created_field, enum_field, id_field, json_list_field


class DeliveryStatus(StrEnum):
    pending = "pending"  # due at next_attempt_at (or leased to a worker until then)
    delivered = "delivered"
    failed = "failed"  # every attempt failed; redeliver by hand


class WebhookEndpoint(SQLModel, table=True):
    __tablename__ = "webhook_endpoints"
    id: uuid.UUID = id_field()
    org_id: uuid.UUID = Field(foreign_key="organizations.id", index=True)
    url: str = Field(max_length=2000)
    description: str = Field(default="", max_length=500)
    event_types: list[str] = json_list_field()
    include_clinical: bool = False  # the org opted in to clinical text (question, details, message bodies)
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, max_length=200)
    # HMAC keys must be at hand to sign, so they are kept as given (unlike a client secret's digest).
    secret: str = Field(max_length=100)
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_until: datetime | None = None
    cursor: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    next_seq: int = Field(default=1, sa_column=Column(BigInteger, nullable=False, default=1))
    consecutive_failures: int = 0
    failing_since: datetime | None = None
    created_by: uuid.UUID | None = None
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_key"),
        UniqueConstraint("endpoint_id", "seq"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )
    id: uuid.UUID = id_field()  # the receiver's idempotency key: webhook-id is msg_<hex of this>
    endpoint_id: uuid.UUID = Field(foreign_key="webhook_endpoints.id", index=True)
    org_id: uuid.UUID = Field(foreign_key="organizations.id")
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))  # per endpoint, gap-free, in log order
    event_key: str = Field(max_length=120)
    position: int = Field(sa_column=Column(BigInteger, nullable=False))  # the event's place in the log
    type: str = Field(max_length=40)
    consult_id: uuid.UUID | None = None
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: DeliveryStatus = enum_field(DeliveryStatus, DeliveryStatus.pending)
    attempts: int = 0
    next_attempt_at: datetime = created_field()
    lease: str | None = Field(default=None, max_length=32)  # the worker's claim; its result needs it
    manual: bool = False  # an admin asked for its next attempt (a redelivery)
    last_status_code: int | None = None
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = created_field()
    delivered_at: datetime | None = None


class WebhookAttempt(SQLModel, table=True):
    __tablename__ = "webhook_attempts"
    id: uuid.UUID = id_field()
    delivery_id: uuid.UUID = Field(foreign_key="webhook_deliveries.id", index=True)
    endpoint_id: uuid.UUID = Field(foreign_key="webhook_endpoints.id", index=True)
    attempt: int
    manual: bool = False  # asked for by an admin (a redelivery)
    at: datetime = created_field()
    status_code: int | None = None
    latency_ms: float | None = None
    error: str | None = Field(default=None, max_length=500)
    retry_in_seconds: float | None = None  # the delay scheduled after it (None: delivered or given up)
