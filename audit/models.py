"""Audit events, appended unsealed, and the chain head that the sealer moves."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, text
from sqlmodel import Column, Field, SQLModel

GENESIS_HASH = "0" * 64


class AuditEvent(SQLModel, table=True):
    """`id` is taken at insert; `seq`, `prev_hash` and `hash` when the sealer chains the row, in the
    order the rows committed (audit.sealer). Until then the row is unsealed."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ux_audit_events_seq", "seq", unique=True),
        Index(
            "ix_audit_events_unsealed",
            "id",
            postgresql_where=text("seq IS NULL"),
            sqlite_where=text("seq IS NULL"),
        ),
    )
    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
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
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str | None = Field(default=None, max_length=64)


class AuditHead(SQLModel, table=True):
    """One row: the last sealed sequence number and hash; the sealer locks it, one batch at a time."""

    __tablename__ = "audit_head"
    id: int = Field(primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    hash: str = Field(max_length=64)
