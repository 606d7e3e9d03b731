"""A whole consult over HTTP and the events WebSocket, on a real uvicorn server."""

import pytest

from tests.live import EventClient, live_world, put_on_call


@pytest.fixture
async def live(env):
    async with live_world(env, escalation_poll_seconds=0.1) as (app, host, world):
        yield app, host, world


CONSULT = {
    "specialty": "trauma-surgery",
    "urgency": "emergent",
    "mode": "live",
    "question": "Blast injury, left leg; tourniquet on 40 min. Amputate or transfer?",
    "patient_ref": "FH2-0042",
    "patient_age": 27,
    "patient_sex": "male",
    "details": "BP 90/60",
    "site_capabilities": {"surgeon": False, "blood_units": 2, "evacuation": ["helicopter"]},
    "languages": ["en"],
}


async def test_cross_org_emergent_consult_end_to_end(live):
    app, host, w = live
    c = w.client
    # Nobody in A is on call for trauma surgery; B's specialist is, under the A→B agreement.
    await put_on_call(
        app.state.sessionmaker,
        org_id=w.orgs["B"],
        user_ids=[w.users["b-specialist"]],
        specialty="trauma-surgery",
    )
    async with (
        EventClient.connect(host, await w.token("b-specialist")) as spec_events,
        EventClient.connect(host, await w.token("a-clinician")) as clin_events,
    ):
        resp = await c.post("/api/v1/consults", json=CONSULT, headers=await w.headers("a-clinician"))
        assert resp.status_code == 201, resp.text
        consult = resp.json()
        assert consult["status"] == "offered" and consult["level"] == 3

        offer = await spec_events.wait_for("offer.created", consult_id=consult["id"])
        assert offer["data"]["consult"]["question"] == CONSULT["question"]
        assert "patient_ref" not in offer["data"]["consult"]  # triage summary only
        triage = await c.get(f"/api/v1/consults/{consult['id']}", headers=await w.headers("b-specialist"))
        assert triage.status_code == 200 and "details" not in triage.json()

        accepted = await c.post(
            f"/api/v1/consults/{consult['id']}/accept", headers=await w.headers("b-specialist")
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["assigned_to"] == str(w.users["b-specialist"])
        await clin_events.wait_for("consult.status", consult_id=consult["id"], status="accepted")

        full = await c.get(f"/api/v1/consults/{consult['id']}", headers=await w.headers("b-specialist"))
        assert full.json()["details"] == "BP 90/60"

        for who, text in (
            ("a-clinician", "Pulse distal: absent"),
            ("b-specialist", "Keep tourniquet; evacuate"),
        ):
            sent = await c.post(
                f"/api/v1/consults/{consult['id']}/messages",
                json={"body": text},
                headers=await w.headers(who),
            )
            assert sent.status_code == 201, sent.text
        await clin_events.wait_for("message.created", consult_id=consult["id"])
        thread = await c.get(
            f"/api/v1/consults/{consult['id']}/messages", headers=await w.headers("a-clinician")
        )
        assert [m["body"] for m in thread.json()["items"]] == [
            "Pulse distal: absent",
            "Keep tourniquet; evacuate",
        ]

        done = await c.post(
            f"/api/v1/consults/{consult['id']}/complete",
            headers=await w.headers("b-specialist"),
            json={"recommendation": "Evacuate by helicopter, keep tourniquet", "disposition": "evacuate"},
        )
        assert done.status_code == 200, done.text
        await clin_events.wait_for("consult.status", consult_id=consult["id"], status="completed")
    clocks = done.json()["clocks"]
    assert all(clocks[k] is not None and clocks[k] >= 0 for k in clocks), clocks
    assert (
        clocks["to_first_offer"]
        <= clocks["to_accept"]
        <= clocks["to_first_response"]
        <= clocks["to_completion"]
    )

    rated = await c.post(
        f"/api/v1/consults/{consult['id']}/rating",
        json={"helpful": True},
        headers=await w.headers("a-clinician"),
    )
    assert rated.status_code == 200 and rated.json()["helpful"] is True
    stats = await c.get(
        "/api/v1/stats/response-times?group_by=urgency", headers=await w.headers("a-coordinator")
    )
    assert stats.status_code == 200
    row = next(r for r in stats.json() if r["group"] == "emergent")
    assert row["count"] == 1 and row["median"]["to_completion"] == clocks["to_completion"]
