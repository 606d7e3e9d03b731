"""Who may call each FHIR route, for their own org's resources and another's: every FHIR route the
app serves must have a row here (as tests/test_authz_matrix.py does for /api/v1)."""

import pytest

from fhir import codes
from tests.fhir.test_fhir import TRAUMA, request
from tests.test_authz_matrix import ALL_KEYS

ROLES = ("clinician", "specialist", "coordinator", "org_admin")
ANYONE = {r: 200 for r in ROLES} | {"root": 200}
# A consult of org A's clinician: its requester and A's coordinators see it; nobody else does.
OWNERS = {"clinician": 200, "coordinator": 200, "specialist": 404, "org_admin": 404, "root": 404}
NOBODY = dict.fromkeys((*ROLES, "root"), 404)

# route -> (what the path names, expected status by caller for an A resource, for a C resource)
Row = tuple[str | None, dict[str, int], dict[str, int] | None]
EXPECTATIONS: dict[str, Row] = {
    "GET /fhir/R4/metadata": (None, ANYONE | {"anonymous": 200}, None),
    "GET /fhir/R4/ServiceRequest": (None, ANYONE, None),
    "GET /fhir/R4/ServiceRequest/{consult_id}": ("consult", OWNERS, NOBODY),
    "POST /fhir/R4/ServiceRequest": (
        None,
        {"clinician": 201} | dict.fromkeys(ROLES[1:] + ("root",), 403),
        None,
    ),
    "GET /fhir/R4/Task": (None, ANYONE, None),
    "GET /fhir/R4/Task/{consult_id}": ("consult", OWNERS, NOBODY),
    "GET /fhir/R4/Communication": ("thread", OWNERS, NOBODY),
    "GET /fhir/R4/Communication/{message_id}": ("message", OWNERS, NOBODY),
    "GET /fhir/R4/PractitionerRole": (None, dict.fromkeys(ROLES, 200) | {"root": 403}, None),
    "GET /fhir/R4/Organization": (None, ANYONE, None),
    "GET /fhir/R4/Organization/{org_id}": ("org", ANYONE, ANYONE),
    "GET /fhir/R4/Practitioner": (
        None,
        {"coordinator": 200, "org_admin": 200, "clinician": 403, "specialist": 403, "root": 403},
        None,
    ),
    "GET /fhir/R4/Practitioner/{user_id}": (
        "user",
        {"coordinator": 200, "org_admin": 200, "clinician": 403, "specialist": 403, "root": 403},
        {"coordinator": 404, "org_admin": 404, "clinician": 403, "specialist": 403, "root": 403},
    ),
}


def test_every_fhir_route_has_a_row():
    served = {k for k in ALL_KEYS if k.split(" ", 1)[1].startswith(codes.BASE + "/")}
    assert served == set(EXPECTATIONS)


async def _targets(w) -> dict[str, dict[str, str]]:
    """Per org (A, C): a consult with a message, its org, a user of it."""
    out = {}
    for org in ("A", "C"):
        who = f"{org.lower()}-clinician"
        resp = await w.client.post(
            codes.BASE + "/ServiceRequest", json=request(), headers=await w.headers(who)
        )
        assert resp.status_code == 201, resp.text
        cid = resp.json()["id"]
        msg = await w.client.post(
            f"/api/v1/consults/{cid}/messages", json={"body": "x"}, headers=await w.headers(who)
        )
        assert msg.status_code == 201, msg.text
        out[org] = {
            "consult": cid,
            "message": msg.json()["id"],
            "org": str(w.orgs[org]),
            "user": str(w.users[who]),
        }
    return out


def _path(key: str, target: str | None, ids: dict[str, str]) -> str:
    path = key.split(" ", 1)[1]
    if target == "thread":
        return f"{path}?based-on=ServiceRequest/{ids['consult']}"
    if target:
        return path.replace(path[path.index("{") :], ids[target])
    return path


@pytest.mark.parametrize("key", sorted(EXPECTATIONS))
async def test_fhir_authorization(world, r4, key):
    w = world
    target, for_a, for_c = EXPECTATIONS[key]
    ids = await _targets(w)
    method = key.split(" ", 1)[0]
    mismatches = []
    cases = [("A", for_a)] + ([("C", for_c)] if for_c else [])
    for org, table in cases:
        for caller in (*ROLES, "root", "anonymous"):
            want = table.get(caller, 401)
            username = None if caller == "anonymous" else ("root" if caller == "root" else f"a-{caller}")
            headers = await w.headers(username) if username else {}
            body = request(specialty=TRAUMA) if method == "POST" else None
            resp = await w.client.request(method, _path(key, target, ids[org]), json=body, headers=headers)
            answer = resp.json()
            await r4.check(answer)
            if resp.status_code != want or (want >= 400) != (answer["resourceType"] == "OperationOutcome"):
                mismatches.append(f"{caller} on {org}'s: {resp.status_code}, expected {want}")
    assert not mismatches, "\n".join(mismatches)
