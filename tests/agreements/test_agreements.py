"""Cooperation agreements: who may do what to them, their lifecycle, and the boundary question they answer."""

import uuid
from datetime import UTC, datetime, timedelta, timezone

from agreements.service import may_send, partner_orgs

URL = "/api/v1/agreements"


def body(
    world, requesting="A", providing="C", specialties=("burns",), start=None, days=30, **changes
) -> dict:
    start = start or datetime.now(UTC) - timedelta(minutes=1)
    data = {
        "requesting_org_id": str(world.orgs[requesting]),
        "providing_org_id": str(world.orgs[providing]),
        "specialties": list(specialties),
        "valid_from": start.isoformat(),
        "valid_until": (start + timedelta(days=days)).isoformat(),
    }
    return data | changes


async def act(world, user: str, agreement_id, action: str):
    return await world.client.post(f"{URL}/{agreement_id}/{action}", headers=await world.headers(user))


def assert_conflict(resp, code: str, current: str | None = None) -> None:
    assert resp.status_code == 409, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["code"] == code
    if current is not None:
        assert problem["current_status"] == current


async def ask(app, requesting, providing, specialty, at=None) -> bool:
    async with app.state.sessionmaker() as session:
        return await may_send(
            session, requesting_org_id=requesting, providing_org_id=providing, specialty=specialty, at=at
        )


# --- lifecycle -------------------------------------------------------------------------------------------------------


async def test_propose_and_accept_by_the_other_party(world):
    resp = await world.client.post(
        URL,
        json=body(world, specialties=["burns", "toxicology", "burns"]),
        headers=await world.headers("a-org_admin"),
    )
    assert resp.status_code == 201, resp.text
    proposed = resp.json()
    assert proposed["status"] == "proposed" and proposed["proposed_by_org_id"] == str(world.orgs["A"])
    assert proposed["specialties"] == ["burns", "toxicology"]
    aid = proposed["id"]

    # The proposer cannot accept its own proposal, however many times it tries.
    assert_conflict(await act(world, "a-org_admin", aid, "accept"), "wrong_party")
    # C's coordinator can read it but not accept it; C's admin accepts.
    assert (
        await world.client.get(f"{URL}/{aid}", headers=await world.headers("c-coordinator"))
    ).status_code == 200
    denied = await act(world, "c-coordinator", aid, "accept")
    assert denied.status_code == 403 and denied.json()["code"] == "permission_denied"
    accepted = await act(world, "c-org_admin", aid, "accept")
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "active"
    # Accepting twice is an invalid transition, answered with the current status.
    assert_conflict(await act(world, "c-org_admin", aid, "accept"), "invalid_transition", "active")


async def test_the_providing_side_may_propose_too(world):
    resp = await world.client.post(
        URL, json=body(world, "A", "B", ["radiology"]), headers=await world.headers("b-org_admin")
    )
    assert resp.status_code == 201, resp.text
    aid = resp.json()["id"]
    assert resp.json()["proposed_by_org_id"] == str(world.orgs["B"])
    assert_conflict(await act(world, "b-org_admin", aid, "accept"), "wrong_party")
    assert (await act(world, "a-org_admin", aid, "accept")).json()["status"] == "active"


async def test_suspend_resume_revoke_rules(world):
    aid = world.agreement_id  # active, A -> B
    # Resuming an active agreement, accepting one: invalid transitions.
    assert_conflict(await act(world, "a-org_admin", aid, "resume"), "invalid_transition", "active")
    assert_conflict(await act(world, "b-org_admin", aid, "accept"), "invalid_transition", "active")

    suspended = await act(world, "b-org_admin", aid, "suspend")
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["suspended_by_org_id"] == str(world.orgs["B"])
    assert_conflict(await act(world, "a-org_admin", aid, "suspend"), "invalid_transition", "suspended")
    # Only the party that suspended may resume.
    assert_conflict(await act(world, "a-org_admin", aid, "resume"), "wrong_party")
    resumed = await act(world, "b-org_admin", aid, "resume")
    assert resumed.json()["status"] == "active" and resumed.json()["suspended_by_org_id"] is None

    # Either side may suspend; here A does, and then A (not B) resumes.
    assert (await act(world, "a-org_admin", aid, "suspend")).json()["suspended_by_org_id"] == str(
        world.orgs["A"]
    )
    assert_conflict(await act(world, "b-org_admin", aid, "resume"), "wrong_party")

    # Either side may revoke, even while suspended; revoked is final.
    revoked = await act(world, "b-org_admin", aid, "revoke")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    for user, action in (
        ("a-org_admin", "resume"),
        ("b-org_admin", "resume"),
        ("a-org_admin", "accept"),
        ("a-org_admin", "suspend"),
        ("b-org_admin", "revoke"),
    ):
        assert_conflict(await act(world, user, aid, action), "invalid_transition", "revoked")
    got = await world.client.get(f"{URL}/{aid}", headers=await world.headers("a-org_admin"))
    assert got.json()["status"] == "revoked"


async def test_a_proposal_can_be_revoked_before_acceptance(world):
    resp = await world.client.post(URL, json=body(world), headers=await world.headers("a-org_admin"))
    aid = resp.json()["id"]
    assert_conflict(await act(world, "c-org_admin", aid, "suspend"), "invalid_transition", "proposed")
    assert_conflict(await act(world, "c-org_admin", aid, "resume"), "invalid_transition", "proposed")
    assert (await act(world, "c-org_admin", aid, "revoke")).json()["status"] == "revoked"
    assert_conflict(await act(world, "c-org_admin", aid, "accept"), "invalid_transition", "revoked")


async def test_coordinator_reads_but_cannot_propose_or_act(world):
    coord = await world.headers("a-coordinator")
    listing = await world.client.get(URL, headers=coord)
    assert listing.status_code == 200
    assert [a["id"] for a in listing.json()["items"]] == [str(world.agreement_id)]
    assert (await world.client.get(f"{URL}/{world.agreement_id}", headers=coord)).status_code == 200
    resp = await world.client.post(URL, json=body(world), headers=coord)
    assert resp.status_code == 403 and resp.json()["code"] == "permission_denied"
    for action in ("suspend", "revoke"):
        resp = await act(world, "a-coordinator", world.agreement_id, action)
        assert resp.status_code == 403 and resp.json()["code"] == "permission_denied"
    for user in ("a-clinician", "b-specialist"):
        assert (await world.client.get(URL, headers=await world.headers(user))).status_code == 403


async def test_an_outsider_cannot_see_or_touch_an_agreement(world):
    c_admin = await world.headers("c-org_admin")
    one = f"{URL}/{world.agreement_id}"
    for method, path in (
        ("GET", one),
        *(("POST", f"{one}/{action}") for action in ("suspend", "revoke", "accept")),
    ):
        resp = await world.client.request(method, path, headers=c_admin)
        assert resp.status_code == 404 and resp.json()["code"] == "not_found", (path, resp.text)
    # Exactly what an id that does not exist answers.
    missing = await world.client.get(f"{URL}/{uuid.uuid4()}", headers=c_admin)
    assert missing.status_code == 404 and missing.json() == {
        **resp.json(),
        "detail": missing.json()["detail"],
    }
    assert (await world.client.get(URL, headers=c_admin)).json()["items"] == []
    # And the agreement is untouched.
    got = await world.client.get(f"{URL}/{world.agreement_id}", headers=await world.headers("a-org_admin"))
    assert got.json()["status"] == "active"


async def test_proposals_must_involve_the_proposer_and_a_real_org(world):
    admin = await world.headers("a-org_admin")
    resp = await world.client.post(URL, json=body(world, "B", "C"), headers=admin)
    assert resp.status_code == 422 and resp.json()["code"] == "not_a_party"
    resp = await world.client.post(
        URL,
        json=body(world, providing="A")
        | {"requesting_org_id": str(uuid.uuid4()), "providing_org_id": str(world.orgs["A"])},
        headers=admin,
    )
    assert resp.status_code == 404 and resp.json()["code"] == "not_found"
    # The platform admin administers orgs, not their agreements.
    resp = await world.client.post(URL, json=body(world), headers=await world.headers("root"))
    assert resp.status_code == 403


INVALID = [
    {"providing_org_id": "A"},  # same org twice
    {"valid_until": "before"},
    {"valid_until": "same"},
    {"specialties": ["Trauma Surgery"]},
    {"specialties": ["trauma_surgery"]},
    {"specialties": ["-burns"]},
    {"specialties": ["x"]},
    {"specialties": []},
    {"specialties": ["burns"] * 51},
    {"specialties": "burns"},
    {"valid_from": "2026-01-01T00:00:00"},  # naive
    {"valid_until": "2027-01-01T00:00:00"},  # naive
    {"valid_from": None},
    {"requesting_org_id": "not-a-uuid"},
]


async def test_invalid_proposals_are_422(world):
    admin = await world.headers("a-org_admin")
    for changes in INVALID:
        data = body(world)
        for key, value in changes.items():
            if value == "A":
                value = str(world.orgs["A"])
            elif value == "before":
                value = (datetime.fromisoformat(data["valid_from"]) - timedelta(seconds=1)).isoformat()
            elif value == "same":
                value = data["valid_from"]
            data[key] = value
        resp = await world.client.post(URL, json=data, headers=admin)
        assert resp.status_code == 422, (changes, resp.text)
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["code"] == "validation_error"
    listing = await world.client.get(URL, headers=admin)
    assert len(listing.json()["items"]) == 1  # nothing was stored
    assert (
        await world.client.post(URL, json=body(world), headers=admin)
    ).status_code == 201  # the base body is fine


async def test_list_filters_by_status(world):
    admin = await world.headers("a-org_admin")
    await world.client.post(URL, json=body(world), headers=admin)
    active = (await world.client.get(f"{URL}?status=active", headers=admin)).json()["items"]
    proposed = (await world.client.get(f"{URL}?status=proposed", headers=admin)).json()["items"]
    assert [a["id"] for a in active] == [str(world.agreement_id)]
    assert len(proposed) == 1 and proposed[0]["providing_org_id"] == str(world.orgs["C"])
    assert (await world.client.get(f"{URL}?status=bogus", headers=admin)).status_code == 422


# --- the boundary question -----------------------------------------------------------------------------------


async def test_may_send_answers_the_boundary_question(app, world):
    a, b, c = world.orgs["A"], world.orgs["B"], world.orgs["C"]
    now = datetime.now(UTC)
    assert await ask(app, a, b, "trauma-surgery") is True
    assert await ask(app, a, b, "burns") is False  # not a covered specialty
    assert await ask(app, b, a, "trauma-surgery") is False  # agreements have a direction
    assert await ask(app, a, c, "trauma-surgery") is False  # no agreement at all
    assert await ask(app, c, b, "trauma-surgery") is False
    assert await ask(app, a, a, "burns") is True  # within one's own org there is no boundary
    # Only inside its dates (valid_from now - 1 day, valid_until now + 30 days).
    assert await ask(app, a, b, "trauma-surgery", at=now + timedelta(days=29)) is True
    assert await ask(app, a, b, "trauma-surgery", at=now + timedelta(days=31)) is False
    assert await ask(app, a, b, "trauma-surgery", at=now - timedelta(days=2)) is False
    # The same instant in another timezone is the same answer.
    tz = timezone(timedelta(hours=-9))
    assert await ask(app, a, b, "trauma-surgery", at=(now + timedelta(days=29)).astimezone(tz)) is True
    assert await ask(app, a, b, "trauma-surgery", at=(now - timedelta(days=2)).astimezone(tz)) is False
    async with app.state.sessionmaker() as session:
        assert await partner_orgs(session, requesting_org_id=a, specialty="trauma-surgery") == [b]
        assert await partner_orgs(session, requesting_org_id=a, specialty="burns") == []
        assert await partner_orgs(session, requesting_org_id=b, specialty="trauma-surgery") == []
        assert (
            await partner_orgs(
                session, requesting_org_id=a, specialty="trauma-surgery", at=now + timedelta(days=60)
            )
            == []
        )


async def test_may_send_follows_the_lifecycle(app, world):
    a, b, c = world.orgs["A"], world.orgs["B"], world.orgs["C"]
    assert (await act(world, "b-org_admin", world.agreement_id, "suspend")).status_code == 200
    assert await ask(app, a, b, "trauma-surgery") is False
    assert (await act(world, "b-org_admin", world.agreement_id, "resume")).status_code == 200
    assert await ask(app, a, b, "trauma-surgery") is True
    assert (await act(world, "a-org_admin", world.agreement_id, "revoke")).status_code == 200
    assert await ask(app, a, b, "trauma-surgery") is False

    # A proposal counts only once accepted, and only from its valid_from on.
    start = datetime.now(UTC) + timedelta(days=2)
    resp = await world.client.post(
        URL,
        json=body(world, "A", "C", ["burns", "toxicology"], start=start, days=10),
        headers=await world.headers("a-org_admin"),
    )
    aid = resp.json()["id"]
    inside = start + timedelta(days=1)
    assert await ask(app, a, c, "burns", at=inside) is False
    assert (await act(world, "c-org_admin", aid, "accept")).status_code == 200
    assert await ask(app, a, c, "burns") is False  # not yet in force
    assert await ask(app, a, c, "burns", at=inside) is True
    assert await ask(app, a, c, "toxicology", at=inside) is True
    assert await ask(app, a, c, "burns", at=start + timedelta(days=10)) is False  # valid_until is exclusive
    assert await ask(app, c, a, "burns", at=inside) is False
    async with app.state.sessionmaker() as session:
        assert await partner_orgs(session, requesting_org_id=a, specialty="burns", at=inside) == [c]


async def test_several_partners_for_one_specialty(app, world):
    a, b, c = world.orgs["A"], world.orgs["B"], world.orgs["C"]
    resp = await world.client.post(
        URL, json=body(world, "A", "C", ["trauma-surgery"]), headers=await world.headers("a-org_admin")
    )
    assert (await act(world, "c-org_admin", resp.json()["id"], "accept")).status_code == 200
    async with app.state.sessionmaker() as session:
        partners = await partner_orgs(session, requesting_org_id=a, specialty="trauma-surgery")
    assert sorted(partners, key=str) == sorted([b, c], key=str) and len(partners) == 2
