"""Events, stored for one channel each, and the log's cursor.

An event's `id` is taken when it is inserted, but transactions commit in another order, so `id`
cannot be a reader's cursor: a reader that saw id 9 could miss id 8 committing after it. `pos` is
given by the log's sequencer (events.log) once the event's transaction has committed, in one
serialized step at a time, so it only ever grows in commit order: `pos > last seen` is gap-free."""

import uuid
from datetime import datetime

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


class Event(SQLModel, table=True):
    """Stored for one channel: a user (`u:<id>`), a role of an org (`r:<org>:coordinator`), or a
    control channel (`control:*`) carrying orders to every node."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_channel_pos", "channel", "pos"),
        Index("ux_events_pos", "pos", unique=True),
        Index("ix_events_unsequenced", "id", postgresql_where=text("pos IS NULL"), sqlite_where=text("pos IS NULL")),
    )
    id: int | None = Field(default=None, sa_column=Column(EventId, primary_key=True, autoincrement=True))
    pos: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    channel: str = Field(max_length=80)
    type: str = Field(max_length=40)
    consult_id: uuid.UUID | None = None
    data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = created_field()

    def wire(self) -> dict:
        """As clients receive it: `id` is the log position, the cursor to reconnect with."""
        return {"type": "event", "id": self.pos, "event": self.type, "channel": self.channel,
                "consult_id": str(self.consult_id) if self.consult_id else None, "data": self.data,
                "at": self.created_at.isoformat()}


class EventCursor(SQLModel, table=True):
    """One row: the last position given. Locking it is what makes sequencing one step at a time."""

    __tablename__ = "event_cursor"
    id: int = Field(primary_key=True)
    last_pos: int = Field(sa_column=Column(BigInteger, nullable=False))
