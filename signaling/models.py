"""Calls on a consult: when they ran and who attended for how long."""

import uuid
from datetime import datetime

from sqlmodel import Field, SQLModel

from api.models import created_field, id_field


class Call(SQLModel, table=True):
    __tablename__ = "calls"
    id: uuid.UUID = id_field()
    consult_id: uuid.UUID = Field(foreign_key="consults.id", index=True)
    room: str = Field(max_length=80)
    started_at: datetime = created_field()
    ended_at: datetime | None = None


class Attendance(SQLModel, table=True):
    __tablename__ = "call_attendance"
    id: uuid.UUID = id_field()
    call_id: uuid.UUID = Field(foreign_key="calls.id", index=True)
    user_id: uuid.UUID = Field(foreign_key="users.id")
    peer_id: str = Field(max_length=32, index=True)
    joined_at: datetime = created_field()
    left_at: datetime | None = None
