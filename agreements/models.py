"""A cooperation agreement between a requesting and a providing organization."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from api.models import created_field, id_field, json_list_field


class AgreementStatus(StrEnum):
    proposed = "proposed"
    active = "active"
    suspended = "suspended"
    revoked = "revoked"


class Agreement(SQLModel, table=True):
    __tablename__ = "agreements"
    id: uuid.UUID = id_field()
    requesting_org_id: uuid.UUID = Field(foreign_key="organizations.id", index=True)
    providing_org_id: uuid.UUID = Field(foreign_key="organizations.id", index=True)
    specialties: list[str] = json_list_field()
    valid_from: datetime
    valid_until: datetime
    status: str = Field(default=AgreementStatus.proposed, max_length=20, index=True)
    proposed_by_org_id: uuid.UUID = Field(foreign_key="organizations.id")
    suspended_by_org_id: uuid.UUID | None = Field(default=None, foreign_key="organizations.id")
    created_by: uuid.UUID = Field(foreign_key="users.id")
    created_at: datetime = created_field()
    updated_at: datetime = created_field()
