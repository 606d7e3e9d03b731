"""Wire shapes of consults, offers, messages and clocks."""

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, field_validator, model_validator

from api.schemas import Bool, Int, Out, Strict
from consults.attachments.schemas import AttachmentOut
from consults.models import OfferStatus, Status, Urgency

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,49}$")]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")]
Disposition = Literal["manage_locally", "transfer", "evacuate", "follow_up"]


class ConsultIn(Strict):
    specialty: Slug
    urgency: Urgency
    mode: Literal["live", "async"] = "live"
    question: str = Field(min_length=1, max_length=2000)
    patient_ref: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="A pseudonymous reference: never a name",
    )
    patient_age: Int | None = Field(default=None, ge=0, le=130)
    patient_sex: Literal["female", "male", "other", "unknown"] | None = None
    details: str = Field(default="", max_length=20000)
    site_capabilities: dict[str, Any] = Field(default_factory=dict)
    languages: list[Language] = Field(default_factory=list, max_length=10)
    on_behalf_of: uuid.UUID | None = Field(
        default=None,
        description="Integration clients only (and required of them): the clinician of the client's org "
        "who requests the consult",
    )

    @field_validator("site_capabilities")
    @classmethod
    def _small(cls, value: dict) -> dict:
        if len(str(value)) > 10000:
            raise ValueError("site_capabilities is limited to 10 000 characters")
        return value


class Clocks(BaseModel):
    to_first_offer: float | None
    to_accept: float | None
    to_first_response: float | None
    to_completion: float | None


class TriageOut(Out):
    """What an offered specialist sees before accepting."""

    id: uuid.UUID
    org_id: uuid.UUID
    specialty: str
    urgency: Urgency
    mode: str
    question: str
    patient_age: int | None
    patient_sex: str | None
    languages: list[str]
    status: Status
    created_at: datetime


class ConsultOut(TriageOut):
    requester_id: uuid.UUID
    client_id: uuid.UUID | None = Field(
        default=None, description="The integration client that requested it on the requester's behalf"
    )
    patient_ref: str
    details: str
    site_capabilities: dict[str, Any]
    assigned_to: uuid.UUID | None
    assigned_org_id: uuid.UUID | None
    level: int
    updated_at: datetime
    first_offered_at: datetime | None
    accepted_at: datetime | None
    first_response_at: datetime | None
    completed_at: datetime | None
    cancelled_at: datetime | None
    recommendation: str | None
    disposition: str | None
    helpful: bool | None
    clocks: Clocks | None = None


class OfferOut(Out):
    id: uuid.UUID
    consult_id: uuid.UUID
    level: int
    status: OfferStatus
    created_at: datetime
    consult: TriageOut


class AssignIn(Strict):
    specialist_id: uuid.UUID


class CompleteIn(Strict):
    recommendation: str = Field(min_length=1, max_length=20000)
    disposition: Disposition


class RatingIn(Strict):
    helpful: Bool


class MessageIn(Strict):
    body: str = Field(default="", max_length=20000)
    attachment_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _not_empty(self) -> "MessageIn":
        if not self.body and not self.attachment_ids:
            raise ValueError("A message needs a body or an attachment")
        return self


class MessageOut(Out):
    id: uuid.UUID
    consult_id: uuid.UUID
    author_id: uuid.UUID
    author_org_id: uuid.UUID
    body: str
    created_at: datetime
    attachments: list[AttachmentOut] = []


class ReadIn(Strict):
    message_id: uuid.UUID


class ReadOut(Out):
    user_id: uuid.UUID
    message_id: uuid.UUID
    read_at: datetime


class PolicyIn(Strict):
    emergent: Int = Field(ge=1, le=86400)
    urgent: Int = Field(ge=1, le=86400)
    routine: Int = Field(ge=1, le=7 * 86400)


class StatRow(BaseModel):
    group: str
    count: int
    median: dict[str, float | None]
    p90: dict[str, float | None]


class ParticipantIn(Strict):
    user_id: uuid.UUID
    role: Literal["interpreter", "specialist", "observer"] = "interpreter"


class ParticipantOut(Out):
    id: uuid.UUID
    consult_id: uuid.UUID
    user_id: uuid.UUID
    role: str
    invited_by: uuid.UUID
    created_at: datetime
