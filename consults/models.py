"""Consults, the offers made for them, their thread, and their durable escalation steps."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Index, UniqueConstraint
from sqlmodel import Column, Field, SQLModel

from api.models import created_field, enum_field, id_field, json_list_field


class Status(StrEnum):
    requested = "requested"
    offered = "offered"
    accepted = "accepted"
    in_session = "in_session"
    completed = "completed"
    cancelled = "cancelled"
    unassigned = "unassigned"


class OfferStatus(StrEnum):
    pending = "pending"
    accepted = "accepted"
    declined = "declined"
    expired = "expired"  # its level's window passed
    withdrawn = (
        "withdrawn"  # someone else took the consult, it was cancelled or assigned, or the agreement ended
    )


class StepStatus(StrEnum):
    pending = "pending"
    done = "done"


class Urgency(StrEnum):
    emergent = "emergent"
    urgent = "urgent"
    routine = "routine"


class Consult(SQLModel, table=True):
    __tablename__ = "consults"
    __table_args__ = (UniqueConstraint("requester_id", "idempotency_key"),)
    id: uuid.UUID = id_field()
    org_id: uuid.UUID = Field(foreign_key="organizations.id", index=True)
    requester_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    # The integration client that requested it on the requester's behalf, if one did; no foreign key,
    # so that deleting the client keeps the consult.
    client_id: uuid.UUID | None = Field(default=None, index=True)
    specialty: str = Field(max_length=50)
    urgency: str = Field(max_length=16)
    mode: str = Field(max_length=8)
    question: str = Field(max_length=2000)
    patient_ref: str = Field(max_length=64)
    patient_age: int | None = None
    patient_sex: str | None = Field(default=None, max_length=8)
    details: str = Field(default="", max_length=20000)
    site_capabilities: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    languages: list[str] = json_list_field()
    status: Status = enum_field(Status, Status.requested, index=True)  # changed by consults.lifecycle only
    assigned_to: uuid.UUID | None = Field(default=None, foreign_key="users.id", index=True)
    assigned_org_id: uuid.UUID | None = Field(default=None, foreign_key="organizations.id", index=True)
    level: int = 0  # the escalation level whose offers are out
    step_seq: int = 0  # the escalation step that is current; older ones are stale
    created_at: datetime = created_field()
    updated_at: datetime = created_field()
    first_offered_at: datetime | None = None
    accepted_at: datetime | None = None
    first_response_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_at: datetime | None = None
    recommendation: str | None = Field(default=None, max_length=20000)
    disposition: str | None = Field(default=None, max_length=16)
    helpful: bool | None = None
    idempotency_key: str | None = Field(default=None, max_length=200)
    request_hash: str | None = Field(default=None, max_length=64)
    # The 201 body first sent to a request with an Idempotency-Key: its retries get exactly that again.
    first_answer: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class Offer(SQLModel, table=True):
    __tablename__ = "offers"
    __table_args__ = (UniqueConstraint("consult_id", "specialist_id"),)
    id: uuid.UUID = id_field()
    consult_id: uuid.UUID = Field(foreign_key="consults.id", index=True)
    specialist_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    org_id: uuid.UUID = Field(foreign_key="organizations.id")
    level: int
    status: OfferStatus = enum_field(OfferStatus, OfferStatus.pending)
    created_at: datetime = created_field()
    responded_at: datetime | None = None


class Message(SQLModel, table=True):
    __tablename__ = "consult_messages"
    __table_args__ = (UniqueConstraint("author_id", "idempotency_key"),)
    id: uuid.UUID = id_field()
    consult_id: uuid.UUID = Field(foreign_key="consults.id", index=True)
    author_id: uuid.UUID = Field(foreign_key="users.id")
    author_org_id: uuid.UUID = Field(foreign_key="organizations.id")
    body: str = Field(max_length=20000)
    created_at: datetime = created_field()
    idempotency_key: str | None = Field(default=None, max_length=200)
    request_hash: str | None = Field(default=None, max_length=64)


class ThreadRead(SQLModel, table=True):
    """A read receipt: how far into a consult's thread one reader has read."""

    __tablename__ = "consult_reads"
    __table_args__ = (UniqueConstraint("consult_id", "user_id"),)
    id: uuid.UUID = id_field()
    consult_id: uuid.UUID = Field(foreign_key="consults.id", index=True)
    user_id: uuid.UUID = Field(foreign_key="users.id")
    message_id: uuid.UUID = Field(foreign_key="consult_messages.id")
    read_at: datetime = created_field()


class EscalationStep(SQLModel, table=True):
    """A due escalation: durable, claimed with row locks, run once."""

    __tablename__ = "escalation_steps"
    __table_args__ = (UniqueConstraint("consult_id", "seq"), Index("ix_escalation_due", "status", "due_at"))
    id: uuid.UUID = id_field()
    consult_id: uuid.UUID = Field(foreign_key="consults.id")
    seq: int
    due_at: datetime
    status: StepStatus = enum_field(StepStatus, StepStatus.pending)
    done_at: datetime | None = None
    done_by: str | None = Field(default=None, max_length=64)


class Participant(SQLModel, table=True):
    """Someone invited into a consult's calls besides requester and assignee (an interpreter, say)."""

    __tablename__ = "consult_participants"
    __table_args__ = (UniqueConstraint("consult_id", "user_id"),)
    id: uuid.UUID = id_field()
    consult_id: uuid.UUID = Field(foreign_key="consults.id", index=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    role: str = Field(max_length=32)
    invited_by: uuid.UUID = Field(foreign_key="users.id")
    created_at: datetime = created_field()
