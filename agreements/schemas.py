"""Wire shapes of cooperation agreements."""

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from agreements.models import AgreementStatus
from api.schemas import Out, Strict, When

Specialty = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,49}$")]


class AgreementIn(Strict):
    requesting_org_id: uuid.UUID
    providing_org_id: uuid.UUID
    specialties: list[Specialty] = Field(min_length=1, max_length=50)
    valid_from: When
    valid_until: When

    @model_validator(mode="after")
    def _check(self) -> "AgreementIn":
        if self.requesting_org_id == self.providing_org_id:
            raise ValueError("an agreement binds two different organizations")
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must come after valid_from")
        return self


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
