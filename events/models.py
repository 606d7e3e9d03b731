"""An event stored for one recipient; its id orders the recipient's stream."""

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, Integer
from sqlmodel import Column, Field, SQLModel

from api.models import created_field

# SQLite only autoincrements an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
EventId = BigInteger().with_variant(Integer(), "sqlite")


def channel_of_user(user_id: uuid.UUID) -> str:
    return f"u:{user_id}"


def channel_of_role(org_id: uuid.UUID, role: str) -> str:
    return f"r:{org_id}:{role}"


class Event(SQLModel, table=True):
    """Stored for one channel: a user (`u:<id>`), or a role of an org (`r:<org>:coordinator`)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_channel_id", "channel", "id"),)
    id: int | None = Field(default=None, sa_column=Column(EventId, primary_key=True, autoincrement=True))
    channel: str = Field(max_length=80)
    type: str = Field(max_length=40)
    consult_id: uuid.UUID | None = None
    data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = created_field()

    def wire(self) -> dict:
        return {"type": "event", "id": self.id, "event": self.type, "channel": self.channel,
                "consult_id": str(self.consult_id) if self.consult_id else None, "data": self.data,
                "at": self.created_at.isoformat()}
