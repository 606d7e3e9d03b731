"""Events, stored for one channel each, and the log's cursor.

An event's `id` is taken when it is inserted, but transactions commit in another order, so `id`
cannot be a reader's cursor: a reader that saw id 9 could miss id 8 committing after it. `pos` is
given by the log's sequencer (events.log) once the event's transaction has committed, one step at a
time, so it only ever grows in commit order: `pos > last seen` is gap-free."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, text
from sqlmodel import Column, Field, SQLModel

from api.models import created_field

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
EventId = BigInteger().with_variant(Integer(), "sqlite")
CONTROL_PREFIX = "control:"  # channels of orders between nodes, never replayed to a client


def channel_of_user(user_id: uuid.UUID) -> str:
    return f"u:{user_id}"


def channel_of_role(org_id: uuid.UUID, role: str) -> str:
    return f"r:{org_id}:{role}"


ORG_ROLES = frozenset({"coordinator"})  # roles whose members share their org's channel


def own_channels(actor: Any) -> list[str]:
    """A caller's own channel, and their org's channels of the roles they hold."""
    roles = sorted(actor.roles & ORG_ROLES)
    return [channel_of_user(actor.id)] + [channel_of_role(actor.org_id, r) for r in roles]


class Event(SQLModel, table=True):
    """Stored for one channel: a user (`u:<id>`), a role of an org (`r:<org>:coordinator`), or a
    control channel (`control:*`) carrying orders to every node."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_channel_pos", "channel", "pos"),
        Index("ux_events_pos", "pos", unique=True),
        Index(
            "ix_events_unsequenced",
            "id",
            postgresql_where=text("pos IS NULL"),
            sqlite_where=text("pos IS NULL"),
        ),
    )
    id: int | None = Field(default=None, sa_column=Column(EventId, primary_key=True, autoincrement=True))
    pos: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    channel: str = Field(max_length=80)
    type: str = Field(max_length=40)
    consult_id: uuid.UUID | None = None
    data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = created_field()

    def wire(self) -> dict:
        return wire(self)


class EventLogRow(SQLModel, table=True):
    """One row: the log's own id (it names the log's Redis channel, so that two deployments sharing a
    Redis never feed each other), and the lock that makes sequencing one step at a time."""

    __tablename__ = "event_log"
    id: int = Field(primary_key=True)
    log_id: str = Field(max_length=32)


def wire(row) -> dict:
    """An event as clients receive it (from an Event, or a row of its columns): `id` is its position."""
    return {
        "type": "event",
        "id": row.pos,
        "event": row.type,
        "channel": row.channel,
        "consult_id": str(row.consult_id) if row.consult_id else None,
        "data": row.data,
        "at": row.created_at.isoformat(),
    }
