"""Liaison's rows as FHIR R4 resources (plain dicts in FHIR JSON); no I/O here."""

import json
from datetime import datetime
from typing import Any

from consults.models import Consult, Message, Status, Urgency
from fhir import codes

Resource = dict[str, Any]


def instant(at: datetime) -> str:
    """FHIR instants carry a zone; SQLite gives back naive UTC."""
    return at.isoformat() if at.tzinfo else at.isoformat() + "+00:00"


def ref(kind: str, ident: object, display: str | None = None) -> dict[str, str]:
    out = {"reference": f"{kind}/{ident}"}
    if display:
        out["display"] = display
    return out


def _specialty(code: str) -> dict[str, Any]:
    return {"coding": [{"system": codes.SPECIALTY, "code": code}], "text": code}


def _ext(name: str, kind: str, value: object) -> dict[str, Any]:
    return {"url": codes.EXT + name, f"value{kind}": value}


def service_request(consult: Consult, *, full: bool) -> Resource:
    """The consult as the order it is; the triage view (an offered specialist) omits who and whom."""
    out: Resource = {
        "resourceType": "ServiceRequest",
        "id": str(consult.id),
        "meta": {"lastUpdated": instant(consult.updated_at)},
        "identifier": [{"system": codes.CONSULT_ID, "value": str(consult.id)}],
        "status": codes.REQUEST_STATUS[Status(consult.status)],
        "intent": "order",
        "priority": codes.PRIORITY[Urgency(consult.urgency)],
        "code": {"coding": [codes.CONSULTATION], "text": "Specialist consultation"},
        "performerType": _specialty(consult.specialty),
        "reasonCode": [{"text": consult.question}],
        "authoredOn": instant(consult.created_at),
        "extension": _request_extensions(consult),
    }
    if not full:
        out["subject"] = {"display": "withheld until the consult is accepted"}
        return out
    out["subject"] = {"identifier": {"system": codes.PATIENT_REF, "value": consult.patient_ref}}
    out["requester"] = ref("Practitioner", consult.requester_id)
    if consult.assigned_to:
        out["performer"] = [ref("Practitioner", consult.assigned_to)]
    if consult.details:
        out["note"] = [{"text": consult.details}]
    if consult.site_capabilities:
        out["contained"] = [_site(consult.site_capabilities)]
        out["supportingInfo"] = [{"reference": "#site", "display": "Capabilities of the requesting site"}]
    return out


def _request_extensions(consult: Consult) -> list[dict[str, Any]]:
    exts = [_ext("mode", "Code", consult.mode)]
    exts += [_ext("language", "Code", lang) for lang in consult.languages]
    if consult.patient_age is not None:
        exts.append(_ext("patient-age", "Integer", consult.patient_age))
    if consult.patient_sex:
        exts.append(_ext("patient-sex", "Code", consult.patient_sex))
    return exts


def _site(capabilities: dict[str, Any]) -> Resource:
    """What the site can do (imaging, oxygen, blood…) as a contained Basic, one extension each."""
    exts = []
    for key, value in sorted(capabilities.items()):
        if isinstance(value, bool):
            exts.append({"url": codes.SITE_CAPABILITY + key, "valueBoolean": value})
        elif isinstance(value, int):
            exts.append({"url": codes.SITE_CAPABILITY + key, "valueInteger": value})
        else:
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            exts.append({"url": codes.SITE_CAPABILITY + key, "valueString": text})
    return {"resourceType": "Basic", "id": "site", "code": {"text": "site-capabilities"}, "extension": exts}


def task(consult: Consult, *, full: bool, deadline: datetime | None) -> Resource:
    """The consult's workflow state, as a referral-management Task whose focus is the request."""
    status = Status(consult.status)
    out: Resource = {
        "resourceType": "Task",
        "id": str(consult.id),
        "meta": {"lastUpdated": instant(consult.updated_at)},
        "basedOn": [ref("ServiceRequest", consult.id)],
        "focus": ref("ServiceRequest", consult.id),
        "status": codes.TASK_STATUS[status],
        "businessStatus": {"coding": [{"system": codes.CONSULT_STATUS, "code": status.value}]},
        "intent": "order",
        "priority": codes.PRIORITY[Urgency(consult.urgency)],
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
        "authoredOn": instant(consult.created_at),
        "lastModified": instant(consult.updated_at),
        "performerType": [_specialty(consult.specialty)],
    }
    if deadline is not None:
        # The moment the current offers lapse and the consult escalates to the next level.
        out["restriction"] = {"period": {"end": instant(deadline)}}
    if not full:
        return out
    out["for"] = {"identifier": {"system": codes.PATIENT_REF, "value": consult.patient_ref}}
    out["requester"] = ref("Practitioner", consult.requester_id)
    if consult.assigned_to:
        out["owner"] = ref("Practitioner", consult.assigned_to)
    if consult.recommendation:
        out["output"] = [{"type": {"text": "recommendation"}, "valueString": consult.recommendation}]
    return out


def communication(message: Message) -> Resource:
    """One message of the thread."""
    return {
        "resourceType": "Communication",
        "id": str(message.id),
        "basedOn": [ref("ServiceRequest", message.consult_id)],
        "partOf": [ref("Task", message.consult_id)],
        "status": "completed",
        "sent": instant(message.created_at),
        "sender": ref("Practitioner", message.author_id),
        "payload": [{"contentString": message.body}],
    }
