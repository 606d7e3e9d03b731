"""A ServiceRequest a client POSTs, read into the consult it asks for."""

from typing import Any, Literal

from pydantic import Field, StrictBool, StrictInt, ValidationError

from api.schemas import Strict
from consults.schemas import ConsultIn
from fhir import codes
from fhir.exceptions import Unprocessable


class Coding(Strict):
    system: str | None = Field(default=None, max_length=200)
    code: str | None = Field(default=None, max_length=100)
    display: str | None = Field(default=None, max_length=200)


class Concept(Strict):
    coding: list[Coding] = Field(default_factory=list, max_length=10)
    text: str | None = Field(default=None, max_length=2000)


class Identifier(Strict):
    system: str | None = Field(default=None, max_length=200)
    value: str = Field(max_length=64)


class Reference(Strict):
    reference: str | None = Field(default=None, max_length=200)
    identifier: Identifier | None = None
    display: str | None = Field(default=None, max_length=200)


class Note(Strict):
    text: str = Field(max_length=20000)


class Extension(Strict):
    url: str = Field(max_length=200)
    valueCode: str | None = Field(default=None, max_length=64)
    valueString: str | None = Field(default=None, max_length=2000)
    valueInteger: StrictInt | None = None
    valueBoolean: StrictBool | None = None

    def value(self) -> Any:
        found = [
            v
            for v in (self.valueCode, self.valueString, self.valueInteger, self.valueBoolean)
            if v is not None
        ]
        if len(found) != 1:
            raise Unprocessable(f"Extension {self.url} needs exactly one value")
        return found[0]


class Basic(Strict):
    resourceType: Literal["Basic"]
    id: str = Field(max_length=64)
    code: Concept
    extension: list[Extension] = Field(default_factory=list, max_length=50)


class Meta(Strict):
    profile: list[str] = Field(default_factory=list, max_length=10)


class ServiceRequestIn(Strict):
    """The elements Liaison reads; any other is refused rather than silently dropped."""

    resourceType: Literal["ServiceRequest"]
    meta: Meta | None = None
    status: Literal["active"] = "active"
    intent: Literal["order"]
    priority: Literal["routine", "urgent", "asap", "stat"] = "routine"
    code: Concept | None = None
    performerType: Concept
    subject: Reference
    requester: Reference | None = None  # a client app names the clinician it requests for
    reasonCode: list[Concept] = Field(min_length=1, max_length=5)
    note: list[Note] = Field(default_factory=list, max_length=1)
    extension: list[Extension] = Field(default_factory=list, max_length=20)
    contained: list[Basic] = Field(default_factory=list, max_length=1)
    supportingInfo: list[Reference] = Field(default_factory=list, max_length=1)


def consult_in(body: ServiceRequestIn) -> ConsultIn:
    """The consult this request asks for; what FHIR allows but a consult cannot hold is a 422."""
    exts = {e.url.removeprefix(codes.EXT): e for e in body.extension if e.url.startswith(codes.EXT)}
    data: dict[str, Any] = {
        "specialty": _specialty(body.performerType),
        "urgency": codes.URGENCY[body.priority],
        "question": _question(body.reasonCode),
        "patient_ref": _patient(body.subject),
        "details": body.note[0].text if body.note else "",
        "languages": [e.value() for e in body.extension if e.url == codes.EXT + "language"],
        "site_capabilities": _site(body),
    }
    if body.requester is not None:
        data["on_behalf_of"] = _practitioner(body.requester)
    for name, field in (("mode", "mode"), ("patient-age", "patient_age"), ("patient-sex", "patient_sex")):
        if name in exts:
            data[field] = exts[name].value()
    try:
        return ConsultIn.model_validate(data)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "type": e["type"], "msg": e["msg"]} for e in exc.errors()]
        raise Unprocessable("The request does not make a valid consult", errors=errors) from None


def _specialty(concept: Concept) -> str:
    for coding in concept.coding:
        if coding.system == codes.SPECIALTY and coding.code:
            return coding.code
    raise Unprocessable(f"performerType needs a coding of system {codes.SPECIALTY}")


def _practitioner(requester: Reference) -> str:
    if requester.reference and requester.reference.startswith("Practitioner/"):
        return requester.reference.removeprefix("Practitioner/")
    raise Unprocessable("requester is a reference to a Practitioner/{id} of the client's own org")


def _question(reasons: list[Concept]) -> str:
    if not reasons[0].text:
        raise Unprocessable("reasonCode[0].text carries the clinical question")
    return reasons[0].text


def _patient(subject: Reference) -> str:
    if subject.identifier and subject.identifier.system == codes.PATIENT_REF:
        return subject.identifier.value
    raise Unprocessable(
        f"subject.identifier of system {codes.PATIENT_REF} (a pseudonymous reference) is required"
    )


def _site(body: ServiceRequestIn) -> dict[str, Any]:
    wanted = {r.reference.removeprefix("#") for r in body.supportingInfo if r.reference}
    found = [b for b in body.contained if b.id in wanted]
    if wanted and not found or len(body.contained) != len(found):
        raise Unprocessable("contained site capabilities must be the one Basic that supportingInfo names")
    return {
        e.url.removeprefix(codes.SITE_CAPABILITY): e.value()
        for basic in found
        for e in basic.extension
        if e.url.startswith(codes.SITE_CAPABILITY)
    }
