"""The organization boundary around consults."""

from tests.consults.conftest import CONSULT
from tests.consults.test_escalation import offered_to
from tests.live import put_on_call


async def test_other_orgs_see_nothing_without_an_offer(app, world):
    cid = (
        await world.client.post("/api/v1/consults", json=CONSULT, headers=await world.headers("a-clinician"))
    ).json()["id"]
    for who in (
        "c-coordinator",
        "c-specialist",
        "b-coordinator",
        "b-specialist",
        "a-specialist",
        "b-clinician",
    ):
        resp = await world.client.get(f"/api/v1/consults/{cid}", headers=await world.headers(who))
        assert resp.status_code == 404, (who, resp.status_code)
        listed = await world.client.get("/api/v1/consults", headers=await world.headers(who))
        assert cid not in [c["id"] for c in listed.json()["items"]], who
    own = await world.client.get(f"/api/v1/consults/{cid}", headers=await world.headers("a-coordinator"))
    assert own.status_code == 200 and own.json()["patient_ref"] == CONSULT["patient_ref"]


async def test_no_offers_to_an_org_without_agreement(app, world):
    await put_on_call(
        app.state.sessionmaker,
        org_id=world.orgs["C"],
        user_ids=[world.users["c-specialist"]],
        specialty="trauma-surgery",
    )
    cid = (
        await world.client.post("/api/v1/consults", json=CONSULT, headers=await world.headers("a-clinician"))
    ).json()["id"]
    assert await offered_to(app, cid) == {}


async def test_revoking_withdraws_pending_offers_and_stops_new_ones(app, world):
    await put_on_call(
        app.state.sessionmaker,
        org_id=world.orgs["B"],
        user_ids=[world.users["b-specialist"]],
        specialty="trauma-surgery",
    )
    cid = (
        await world.client.post("/api/v1/consults", json=CONSULT, headers=await world.headers("a-clinician"))
    ).json()["id"]
    assert await offered_to(app, cid) == {world.users["b-specialist"]: "pending"}
    revoked = await world.client.post(
        f"/api/v1/agreements/{world.agreement_id}/revoke", headers=await world.headers("b-org_admin")
    )
    assert revoked.status_code == 200, revoked.text
    assert await offered_to(app, cid) == {world.users["b-specialist"]: "withdrawn"}
    late = await world.client.post(
        f"/api/v1/consults/{cid}/accept", headers=await world.headers("b-specialist")
    )
    assert late.status_code == 404  # the agreement no longer opens the consult to B at all
    second = (
        await world.client.post("/api/v1/consults", json=CONSULT, headers=await world.headers("a-clinician"))
    ).json()
    assert await offered_to(app, second["id"]) == {} and second["status"] == "unassigned"


async def test_revoking_closes_the_consult_to_the_partner_org(app, world):
    await put_on_call(
        app.state.sessionmaker,
        org_id=world.orgs["B"],
        user_ids=[world.users["b-specialist"]],
        specialty="trauma-surgery",
    )
    cid = (
        await world.client.post("/api/v1/consults", json=CONSULT, headers=await world.headers("a-clinician"))
    ).json()["id"]
    spec = await world.headers("b-specialist")
    assert (await world.client.post(f"/api/v1/consults/{cid}/accept", headers=spec)).status_code == 200
    assert (await world.client.get(f"/api/v1/consults/{cid}/messages", headers=spec)).status_code == 200
    revoked = await world.client.post(
        f"/api/v1/agreements/{world.agreement_id}/revoke", headers=await world.headers("a-org_admin")
    )
    assert revoked.status_code == 200
    for method, path in (("GET", ""), ("GET", "/messages"), ("POST", "/complete")):
        body = {"recommendation": "r", "disposition": "follow_up"} if method == "POST" else None
        resp = await world.client.request(method, f"/api/v1/consults/{cid}{path}", json=body, headers=spec)
        assert resp.status_code == 404, (path, resp.status_code)
    own = await world.client.get(f"/api/v1/consults/{cid}", headers=await world.headers("a-clinician"))
    assert own.status_code == 200  # the requesting org keeps its case
