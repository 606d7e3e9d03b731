"""How Liaison's states and codes read in FHIR: one table per mapping, both directions from it."""

from consults.models import Status, Urgency

BASE = "/fhir/R4"
FHIR_JSON = "application/fhir+json"
FHIR_VERSION = "4.0.1"

# Code systems of our own for what FHIR has no shared vocabulary for.
SPECIALTY = "urn:liaison:specialty"
CONSULT_STATUS = "urn:liaison:consult-status"
CONSULT_ID = "urn:liaison:consult"
PATIENT_REF = "urn:liaison:patient-ref"
USERNAME = "urn:liaison:username"
ORG_KIND = "urn:liaison:org-kind"
EXT = "urn:liaison:extension:"  # + mode, language, patient-age, patient-sex
SITE_CAPABILITY = "urn:liaison:site-capability:"  # + the capability's key
SNOMED = "http://snomed.info/sct"
CONSULTATION = {"system": SNOMED, "code": "11429006", "display": "Consultation"}

# ServiceRequest.status: the request stays active while anyone can still act on it.
REQUEST_STATUS: dict[Status, str] = {
    Status.requested: "active",
    Status.offered: "active",
    Status.accepted: "active",
    Status.in_session: "active",
    Status.unassigned: "active",
    Status.completed: "completed",
    Status.cancelled: "revoked",
}

# Task.status, as in the workflow module's referral management (requested → accepted →
# in-progress → completed); a consult nobody took is still requested, its businessStatus says why.
TASK_STATUS: dict[Status, str] = {
    Status.requested: "requested",
    Status.offered: "requested",
    Status.unassigned: "requested",
    Status.accepted: "accepted",
    Status.in_session: "in-progress",
    Status.completed: "completed",
    Status.cancelled: "cancelled",
}

PRIORITY: dict[Urgency, str] = {
    Urgency.routine: "routine",
    Urgency.urgent: "urgent",
    Urgency.emergent: "stat",
}
# FHIR's asap sits between urgent and stat: a request that cannot wait for an urgent window.
URGENCY: dict[str, Urgency] = {"routine": Urgency.routine, "urgent": Urgency.urgent, "asap": Urgency.emergent}
URGENCY["stat"] = Urgency.emergent


def statuses_for(table: dict[Status, str], fhir_codes: list[str]) -> list[Status]:
    """Our statuses that read as any of the FHIR codes given."""
    return [ours for ours, theirs in table.items() if theirs in fhir_codes]
