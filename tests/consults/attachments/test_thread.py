"""Attachments in the thread: the boundary, the audit, events, Idempotency-Key, read receipts."""

import uuid

from sqlalchemy import func, select

from audit.models import AuditEvent
from consults.models import Message
from events.models import Event
from tests.consults.attachments.conftest import CONSULT, attach, clip, gps_jpeg, upload
from tests.live import accepted_consult, put_on_call

API = "/api/v1"


async def _audited(app, action: str, resource_id: str) -> int:
    async with app.state.sessionmaker() as session:
        query = select(func.count()).where(AuditEvent.action == action, AuditEvent.resource_id == resource_id)
        return (await session.execute(query)).scalar()


async def test_an_offered_partner_sees_count_and_types_not_content_until_assigned_then_not_after_revocation(
    app, world
):
    await put_on_call(
        app.state.sessionmaker,
        org_id=world.orgs["B"],
        user_ids=[world.users["b-specialist"]],
        specialty=CONSULT["specialty"],
    )
    clinician, spec = await world.headers("a-clinician"), await world.headers("b-specialist")
    consult = (await world.client.post(f"{API}/consults", json=CONSULT, headers=clinician)).json()
    assert consult["status"] == "offered", consult
    cid = consult["id"]
    message = await attach(world.client, cid, clinician, gps_jpeg(), "burn.jpg")
    (photo,) = message["attachments"]
    content = f"{API}/consults/{cid}/attachments/{photo['id']}/content"
    offered = await world.client.get(f"{API}/consults/{cid}/attachments", headers=spec)
    assert offered.status_code == 200
    assert offered.json() == {"count": 1, "types": {"image/jpeg": 1}, "items": None}
    for path in (content, f"{API}/consults/{cid}/attachments/{photo['id']}/thumbnail"):
        refused = await world.client.get(path, headers=spec)
        assert refused.status_code == 404 and refused.json()["code"] == "not_found"
    for outsider in ("c-specialist", "c-coordinator", "b-clinician"):
        assert (await world.client.get(content, headers=await world.headers(outsider))).status_code == 404
        assert (
            await world.client.get(f"{API}/consults/{cid}/attachments", headers=await world.headers(outsider))
        ).status_code == 404
    assert (await world.client.post(f"{API}/consults/{cid}/accept", headers=spec)).status_code == 200
    downloads = 0
    for _ in range(3):
        got = await world.client.get(content, headers=spec)
        assert got.status_code == 200 and got.content[:3] == b"\xff\xd8\xff"
        downloads += 1
    own = await world.client.get(content, headers=clinician)
    assert own.status_code == 200
    downloads += 1
    assert await _audited(app, "attachment.download", photo["id"]) == downloads  # every download has its row
    assert await _audited(app, "attachment.upload", photo["id"]) == 1
    revoked = await world.client.post(
        f"{API}/agreements/{world.agreement_id}/revoke", headers=await world.headers("a-org_admin")
    )
    assert revoked.status_code == 200, revoked.text
    assert (await world.client.get(content, headers=spec)).status_code == 404
    assert (await world.client.get(f"{API}/consults/{cid}/attachments", headers=spec)).status_code == 404
    assert await _audited(app, "attachment.download", photo["id"]) == downloads  # a refusal is no download


async def test_message_created_events_carry_attachment_metadata_not_content(app, world):
    consult = await accepted_consult(app, world, CONSULT)
    message = await attach(
        world.client, consult["id"], await world.headers("a-clinician"), clip(4096), "gait.mp4"
    )
    async with app.state.sessionmaker() as session:
        events = (await session.execute(select(Event).where(Event.type == "message.created"))).scalars().all()
    (event,) = [e for e in events if e.data["message_id"] == message["id"]]
    (meta,) = event.data["attachments"]
    assert meta == {
        "id": message["attachments"][0]["id"],
        "kind": "clip",
        "media_type": "video/mp4",
        "filename": "gait.mp4",
        "size": 4096,
    }
    listed = await world.client.get(
        f"{API}/consults/{consult['id']}/messages", headers=await world.headers("b-specialist")
    )
    assert listed.json()["items"][0]["attachments"][0]["id"] == meta["id"]


async def test_a_message_retried_ten_times_with_one_key_is_stored_once(app, world):
    consult = await accepted_consult(app, world, CONSULT)
    headers = await world.headers("a-clinician") | {"Idempotency-Key": "msg-" + uuid.uuid4().hex}
    done = await upload(world.client, consult["id"], headers, clip(2048), "gait.mp4")
    body = {"body": "over a bad link", "attachment_ids": [done.headers["attachment-id"]]}
    answers = [
        await world.client.post(f"{API}/consults/{consult['id']}/messages", json=body, headers=headers)
        for _ in range(10)
    ]
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert [a.headers.get("idempotent-replayed") for a in answers] == [None] + ["true"] * 9
    assert all(a.json()["attachments"][0]["id"] == body["attachment_ids"][0] for a in answers)
    async with app.state.sessionmaker() as session:
        stored = (
            await session.execute(select(func.count()).where(Message.consult_id == uuid.UUID(consult["id"])))
        ).scalar()
    assert stored == 1
    other = await world.client.post(
        f"{API}/consults/{consult['id']}/messages", json={"body": "something else"}, headers=headers
    )
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


async def test_attachments_must_be_the_authors_own_unposted_ones(app, world):
    consult = await accepted_consult(app, world, CONSULT)
    cid, clinician = consult["id"], await world.headers("a-clinician")
    mine = (await upload(world.client, cid, clinician, clip(2048), "gait.mp4")).headers["attachment-id"]
    spec = await world.headers("b-specialist")
    for who, ids in ((spec, [mine]), (clinician, [str(uuid.uuid4())])):
        resp = await world.client.post(
            f"{API}/consults/{cid}/messages", json={"attachment_ids": ids}, headers=who
        )
        assert resp.status_code == 422 and resp.json()["code"] == "invalid_attachment", resp.text
    # Unposted, it is the uploader's alone: nobody else lists or reads it.
    assert (await world.client.get(f"{API}/consults/{cid}/attachments", headers=spec)).json()["count"] == 0
    assert (
        await world.client.get(f"{API}/consults/{cid}/attachments/{mine}/content", headers=spec)
    ).status_code == 404
    ok = await world.client.post(
        f"{API}/consults/{cid}/messages", json={"attachment_ids": [mine]}, headers=clinician
    )
    assert ok.status_code == 201 and ok.json()["body"] == ""
    again = await world.client.post(
        f"{API}/consults/{cid}/messages", json={"attachment_ids": [mine]}, headers=clinician
    )
    assert again.status_code == 422  # posted once only
    bad = [
        ({}, "validation_error"),
        ({"body": "x", "attachment_ids": ["not-a-uuid"]}, "validation_error"),
        ({"body": "x", "attachment_ids": mine}, "validation_error"),
        ({"body": "x", "unknown": 1}, "validation_error"),
        ({"body": "a\u0000b"}, "unstorable_character"),
        ({"body": "x", "attachment_ids": [str(uuid.uuid4())] * 11}, "validation_error"),
    ]
    for sent, code in bad:
        resp = await world.client.post(f"{API}/consults/{cid}/messages", json=sent, headers=clinician)
        assert resp.status_code == 422 and resp.json()["code"] == code, (sent, resp.text)


async def test_read_receipts_say_who_read_up_to_which_message(app, world):
    consult = await accepted_consult(app, world, CONSULT)
    cid, clinician, spec = (
        consult["id"],
        await world.headers("a-clinician"),
        await world.headers("b-specialist"),
    )
    first = (
        await world.client.post(f"{API}/consults/{cid}/messages", json={"body": "one"}, headers=clinician)
    ).json()
    second = (
        await world.client.post(f"{API}/consults/{cid}/messages", json={"body": "two"}, headers=clinician)
    ).json()
    read = await world.client.put(
        f"{API}/consults/{cid}/reads/me", json={"message_id": second["id"]}, headers=spec
    )
    assert read.status_code == 200 and read.json()["message_id"] == second["id"]
    back = await world.client.put(
        f"{API}/consults/{cid}/reads/me", json={"message_id": first["id"]}, headers=spec
    )
    assert back.json()["message_id"] == second["id"]  # a receipt never moves back
    await world.client.put(
        f"{API}/consults/{cid}/reads/me", json={"message_id": first["id"]}, headers=clinician
    )
    receipts = (await world.client.get(f"{API}/consults/{cid}/reads", headers=clinician)).json()
    assert {(r["user_id"], r["message_id"]) for r in receipts} == {
        (str(world.users["b-specialist"]), second["id"]),
        (str(world.users["a-clinician"]), first["id"]),
    }
    unknown = await world.client.put(
        f"{API}/consults/{cid}/reads/me", json={"message_id": str(uuid.uuid4())}, headers=spec
    )
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_message"
    for sent in ({}, {"message_id": 5}, {"message_id": "x", "more": 1}):
        resp = await world.client.put(f"{API}/consults/{cid}/reads/me", json=sent, headers=spec)
        assert resp.status_code == 422, resp.text
