"""The CapabilityStatement: what this server does, as GET /fhir/R4/metadata says it."""

from fhir import codes
from fhir.resources import Resource

_TOKEN, _DATE, _REF = "token", "date", "reference"
_CONSULT_SEARCH = [
    ("_id", _TOKEN),
    ("status", _TOKEN),
    ("patient", _TOKEN),
    ("priority", _TOKEN),
    ("performer-type", _TOKEN),
    ("specialty", _TOKEN),
]
SEARCH: dict[str, list[tuple[str, str]]] = {
    "ServiceRequest": [*_CONSULT_SEARCH, ("authored", _DATE), ("performer", _REF)],
    "Task": [*_CONSULT_SEARCH, ("authored-on", _DATE), ("owner", _REF), ("focus", _REF), ("based-on", _REF)],
    "Communication": [("based-on", _REF), ("part-of", _REF)],
    "PractitionerRole": [("specialty", _TOKEN), ("date", _DATE)],
    "Organization": [("type", _TOKEN)],
    "Practitioner": [],
}
PAGING = [("_count", "number"), ("_offset", "number")]


def statement(version: str) -> Resource:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-02",
        "kind": "instance",
        "software": {"name": "Liaison", "version": version},
        "implementation": {"description": "Liaison telemedicine consults", "url": codes.BASE},
        "fhirVersion": codes.FHIR_VERSION,
        "format": [codes.FHIR_JSON, "json"],
        "rest": [
            {
                "mode": "server",
                "security": {"description": "Bearer tokens as for /api/v1: the same roles and org boundary"},
                "resource": [_resource(kind, params) for kind, params in SEARCH.items()],
            }
        ],
    }


def _resource(kind: str, params: list[tuple[str, str]]) -> Resource:
    interactions = [{"code": "read"}, {"code": "search-type"}]
    if kind == "ServiceRequest":
        interactions.append({"code": "create"})
    return {
        "type": kind,
        "interaction": interactions,
        "searchParam": [{"name": n, "type": t} for n, t in [*params, *PAGING]],
    }
