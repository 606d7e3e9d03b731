"""Audit events and the chain head that serializes appends."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger
from sqlmodel import Column, Field, SQLModel

GENESIS_HASH = "0" * 64


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    at: datetime
    actor_type: str = Field(max_length=16)
    actor_id: str | None = Field(default=None, max_length=64)
    actor_org_id: uuid.UUID | None = Field(default=None, index=True)
    org_id: uuid.UUID | None = Field(default=None, index=True)
    action: str = Field(max_length=80, index=True)
    resource_type: str | None = Field(default=None, max_length=40)
    resource_id: str | None = Field(default=None, max_length=64)
    outcome: str = Field(max_length=16)
    reason: str | None = Field(default=None, max_length=80)
    request_id: str | None = Field(default=None, max_length=64)
    client_addr: str | None = Field(default=None, max_length=64)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class AuditHead(SQLModel, table=True):
    """One row: the last sequence number and hash; updating it first takes the append lock."""

    __tablename__ = "audit_head"
    id: int = Field(primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    hash: str = Field(max_length=64)
