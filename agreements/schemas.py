"""Wire shapes of cooperation agreements."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from agreements.models import AgreementStatus
from api.schemas import Out, Strict, When, after, differs_from

Specialty = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,49}$")]


class AgreementIn(Strict):
    requesting_org_id: uuid.UUID
    providing_org_id: uuid.UUID = differs_from("requesting_org_id")  # an agreement binds two organizations
    specialties: list[Specialty] = Field(min_length=1, max_length=50)
    valid_from: When
    valid_until: When = after("valid_from")


class AgreementOut(Out):
    id: uuid.UUID
    requesting_org_id: uuid.UUID
    providing_org_id: uuid.UUID
    specialties: list[str]
    valid_from: datetime
    valid_until: datetime
    status: AgreementStatus
    proposed_by_org_id: uuid.UUID
    suspended_by_org_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
