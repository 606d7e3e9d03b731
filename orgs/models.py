"""Organizations: every record in Liaison belongs to one."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON
from sqlmodel import Column, Field, SQLModel

from api.models import created_field, id_field


class OrgKind(StrEnum):
    civilian = "civilian"
    military = "military"
    ngo = "ngo"
    government = "government"


class Organization(SQLModel, table=True):
    __tablename__ = "organizations"
    id: uuid.UUID = id_field()
    name: str = Field(max_length=200, unique=True)
    kind: str = Field(max_length=20)
    # Acknowledgement windows in seconds by urgency; None means the defaults.
    escalation_windows: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = created_field()
