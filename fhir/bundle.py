"""Searchset Bundles with paging links, and OperationOutcome for errors."""

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from fhir import codes
from fhir.resources import Resource

MAX_COUNT = 100


def searchset(
    kind: str, resources: Sequence[Resource], *, query: dict[str, str], count: int, offset: int, more: bool
) -> Resource:
    """One page of matches; `next` is there only while another page exists."""

    def link(relation: str, at: int) -> dict[str, str]:
        return {"relation": relation, "url": f"{codes.BASE}/{kind}?{urlencode(query | _page(count, at))}"}

    links = [link("self", offset)]
    if more:
        links.append(link("next", offset + count))
    if offset:
        links.append(link("previous", max(0, offset - count)))
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": [
            {
                "fullUrl": f"{codes.BASE}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def _page(count: int, offset: int) -> dict[str, str]:
    return {"_count": str(count), "_offset": str(offset)}


# FHIR's issue-type for each HTTP status we answer with.
ISSUE_TYPE = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 409: "conflict"}
ISSUE_TYPE |= {413: "too-costly", 422: "invalid", 429: "throttled", 503: "transient"}


def outcome(problem: dict[str, Any]) -> Resource:
    """A problem+json body in FHIR's words; its stable code travels as the issue's details code."""
    status = int(problem.get("status") or 500)
    text = str(problem.get("detail") or problem.get("title") or "")
    issue: dict[str, Any] = {
        "severity": "error" if status < 500 or status == 503 else "fatal",
        "code": ISSUE_TYPE.get(status, "exception"),
        "details": {"coding": [{"system": "urn:liaison:problem", "code": str(problem.get("code", "error"))}]},
        "diagnostics": text or "error",
    }
    issues = [issue]
    for err in problem.get("errors") or []:
        where = ".".join(str(p) for p in err.get("loc", []) if p != "body")
        detail: dict[str, Any] = {
            "severity": "error",
            "code": "invalid",
            "diagnostics": err.get("msg") or "invalid",
        }
        if where:  # FHIR strings are never empty
            detail["expression"] = [where]
        issues.append(detail)
    return {"resourceType": "OperationOutcome", "issue": issues}
