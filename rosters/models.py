"""Specialist profiles, rosters and shifts."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from api.models import created_field, enum_field, id_field, json_list_field


class Availability(StrEnum):
    available = "available"
    busy = "busy"
    off = "off"


class SpecialistProfile(SQLModel, table=True):
    __tablename__ = "specialist_profiles"
    user_id: uuid.UUID = Field(foreign_key="users.id", primary_key=True)
    org_id: uuid.UUID = Field(foreign_key="organizations.id", index=True)
    specialties: list[str] = json_list_field()
    languages: list[str] = json_list_field()
    max_concurrent: int = 2
    availability: Availability = enum_field(Availability, Availability.available)
    last_assigned_at: datetime | None = None
    updated_at: datetime = created_field()


class Roster(SQLModel, table=True):
    __tablename__ = "rosters"
    id: uuid.UUID = id_field()
    org_id: uuid.UUID = Field(foreign_key="organizations.id", index=True)
    specialty: str = Field(max_length=50, index=True)
    name: str = Field(max_length=200)
    created_at: datetime = created_field()


class Shift(SQLModel, table=True):
    """A specialist on a roster between two instants; overrides are shifts too (overlap allowed)."""

    __tablename__ = "shifts"
    id: uuid.UUID = id_field()
    roster_id: uuid.UUID = Field(foreign_key="rosters.id", index=True)
    org_id: uuid.UUID = Field(foreign_key="organizations.id", index=True)
    specialist_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    starts_at: datetime = Field(index=True)
    ends_at: datetime = Field(index=True)
    tier: int = 1
    created_at: datetime = created_field()
