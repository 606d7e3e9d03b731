"""Wire shapes of profiles, rosters and shifts."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from api.schemas import Int, Out, Strict, When, after
from rosters.models import Availability

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,49}$")]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]


class ProfileIn(Strict):
    specialties: list[Slug] = Field(min_length=1, max_length=20)
    languages: list[Language] = Field(default_factory=list, max_length=20)
    max_concurrent: Int = Field(default=2, ge=1, le=50)


class ProfileOut(Out):
    user_id: uuid.UUID
    org_id: uuid.UUID
    specialties: list[str]
    languages: list[str]
    max_concurrent: int
    availability: Availability
    updated_at: datetime


class AvailabilityIn(Strict):
    availability: Availability


class RosterIn(Strict):
    specialty: Slug
    name: str = Field(min_length=1, max_length=200)


class RosterOut(Out):
    id: uuid.UUID
    org_id: uuid.UUID
    specialty: str
    name: str
    created_at: datetime


class ShiftIn(Strict):
    specialist_id: uuid.UUID
    starts_at: When
    ends_at: When = after("starts_at")
    tier: Int = Field(default=1, ge=1, le=9)


class ShiftOut(Out):
    id: uuid.UUID
    roster_id: uuid.UUID
    specialist_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    tier: int


class OnCallOut(Out):
    shift_id: uuid.UUID
    specialist_id: uuid.UUID
    tier: int
    ends_at: datetime
    availability: Availability | None
    languages: list[str]
