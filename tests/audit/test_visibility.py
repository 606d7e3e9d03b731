"""The audit trail seen by the org whose data it is: partner reads and refused probes of its resources."""

import uuid

from audit.sealer import seal_all
from tests.consults.conftest import CONSULT
from tests.live import put_on_call


async def audit_of(app, world, admin: str) -> list[dict]:
    """What `admin` reads in the audit API, every row sealed first (the sealer would within a second)."""
    await seal_all(app.state.sessionmaker)
    resp = await world.client.get("/api/v1/audit?limit=100", headers=await world.headers(admin))
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


async def offered_consult(app, world) -> str:
    """An A consult offered to B's specialist (the A->B agreement covers trauma surgery)."""
    await put_on_call(
        app.state.sessionmaker,
        org_id=world.orgs["B"],
        user_ids=[world.users["b-specialist"]],
        specialty="trauma-surgery",
    )
    resp = await world.client.post(
        "/api/v1/consults", json=CONSULT, headers=await world.headers("a-clinician")
    )
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


async def test_partner_reads_through_lists_are_visible_to_the_owning_org(app, world):
    cid = await offered_consult(app, world)
    spec = await world.headers("b-specialist")
    offers = await world.client.get("/api/v1/offers", headers=spec)
    assert offers.status_code == 200 and [o["consult"]["id"] for o in offers.json()["items"]] == [cid]
    assert (await world.client.post(f"/api/v1/consults/{cid}/accept", headers=spec)).status_code == 200
    listed = await world.client.get("/api/v1/consults", headers=spec)
    assert [c["id"] for c in listed.json()["items"]] == [cid]
    # A's own lists of A's consults add no second row: A's listing row is already A's.
    queue = await world.client.get("/api/v1/consults", headers=await world.headers("a-coordinator"))
    assert [c["id"] for c in queue.json()["items"]] == [cid]

    org_a, org_b, spec_id = str(world.orgs["A"]), str(world.orgs["B"]), str(world.users["b-specialist"])
    seen_by_a = await audit_of(app, world, "a-org_admin")
    partner_reads = {
        e["action"]: e for e in seen_by_a if e["actor_id"] == spec_id and e["resource_type"] == "consult"
    }
    for action in ("offer.list", "consult.list"):
        e = partner_reads[action]
        assert (e["org_id"], e["actor_org_id"], e["resource_id"], e["reason"]) == (
            org_a,
            org_b,
            cid,
            "listed",
        )
        assert e["hash"]
    assert "consult.accept" in partner_reads
    a_lists = [e for e in seen_by_a if e["action"] == "consult.list" and e["actor_org_id"] == org_a]
    assert len(a_lists) == 1 and a_lists[0]["resource_id"] is None

    # B's admin sees its specialist's reads too: both the listing rows and the per-item rows.
    seen_by_b = [e for e in await audit_of(app, world, "b-org_admin") if e["actor_id"] == spec_id]
    assert {(e["action"], e["org_id"]) for e in seen_by_b} >= {
        ("offer.list", org_b),
        ("offer.list", org_a),
        ("consult.list", org_b),
        ("consult.list", org_a),
    }
    # C has nothing to do with any of it.
    assert not [e for e in await audit_of(app, world, "c-org_admin") if e["actor_id"] == spec_id]


async def test_refused_probes_of_an_orgs_resources_are_visible_to_it(app, world):
    cid = await offered_consult(app, world)
    c_coord, c_admin = await world.headers("c-coordinator"), await world.headers("c-org_admin")
    nowhere = str(uuid.uuid4())
    assert (await world.client.get(f"/api/v1/consults/{cid}", headers=c_coord)).status_code == 404
    assert (await world.client.get(f"/api/v1/consults/{nowhere}", headers=c_coord)).status_code == 404
    assert (
        await world.client.get(f"/api/v1/orgs/{world.orgs['A']}/users", headers=c_admin)
    ).status_code == 404
    a_user = world.users["a-clinician"]
    probe_user = f"/api/v1/orgs/{world.orgs['C']}/users/{a_user}"
    disable = {"is_active": False}
    assert (await world.client.patch(probe_user, json=disable, headers=c_admin)).status_code == 404
    forged = {"Authorization": "Bearer not-a-token"}
    assert (await world.client.post(f"/api/v1/consults/{cid}/accept", headers=forged)).status_code == 401

    org_a, org_c = str(world.orgs["A"]), str(world.orgs["C"])
    refused_in_a = [e for e in await audit_of(app, world, "a-org_admin") if e["outcome"] == "denied"]
    probes = {(e["action"], e["actor_org_id"], e["resource_id"]) for e in refused_in_a}
    assert probes == {
        ("GET /consults/{consult_id}", org_c, cid),
        ("GET /orgs/{org_id}/users", org_c, org_a),
        ("PATCH /orgs/{org_id}/users/{user_id}", org_c, org_c),  # A's user named under C's own org
        ("POST /consults/{consult_id}/accept", None, cid),  # not even signed in
    }
    assert all(e["org_id"] == org_a and e["hash"] for e in refused_in_a)

    # C's admin sees its members' refusals, but not whose resources they were: the 404 said nothing either.
    refused_in_c = [e for e in await audit_of(app, world, "c-org_admin") if e["outcome"] == "denied"]
    assert sorted((e["resource_id"], e["org_id"] or "", bool(e["hash"])) for e in refused_in_c) == sorted(
        [
            (cid, "", False),
            (nowhere, org_c, True),  # names nothing: filed under the prober's org alone
            (org_a, "", False),
            (org_c, org_c, True),  # the probe of A's user under C's path concerns C ...
            (org_c, "", False),  # ... and A, whose row C sees without A's name
        ]
    )
    # Nobody else sees them.
    assert not [e for e in await audit_of(app, world, "b-org_admin") if e["outcome"] == "denied"]
