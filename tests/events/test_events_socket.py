"""The events socket: authentication first, delivery, and replay from a last event id."""

import asyncio
import json

import pytest
import websockets

from tests.events.conftest import CONSULT
from tests.live import EventClient


async def test_missed_events_are_replayed_after_reconnect(live):
    app, host, w = live
    token = await w.token("b-specialist")
    async with EventClient.connect(host, token) as events:
        first = (
            await w.client.post("/api/v1/consults", json=CONSULT, headers=await w.headers("a-clinician"))
        ).json()
        seen = await events.wait_for("offer.created", consult_id=first["id"])
    missed = [
        (
            await w.client.post("/api/v1/consults", json=CONSULT, headers=await w.headers("a-clinician"))
        ).json()["id"]
        for _ in range(3)
    ]  # while the specialist is away
    async with EventClient.connect(host, token, last_event_id=seen["id"]) as events:
        for cid in missed:
            await events.wait_for("offer.created", consult_id=cid)
        replayed = [e for e in events.events if e.get("event") == "offer.created"]
        assert [e["consult_id"] for e in replayed] == missed  # in order, and not the one already seen
        assert all(e["id"] > seen["id"] for e in replayed)


async def test_coordinators_hear_the_queue_and_others_only_their_own(live):
    app, host, w = live
    async with (
        EventClient.connect(host, await w.token("a-coordinator")) as coord,
        EventClient.connect(host, await w.token("c-specialist")) as outsider,
    ):
        created = (
            await w.client.post("/api/v1/consults", json=CONSULT, headers=await w.headers("a-clinician"))
        ).json()
        await coord.wait_for("queue.changed", consult_id=created["id"])
        await asyncio.sleep(0.3)
        assert not [e for e in outsider.events if e.get("type") == "event"]


@pytest.mark.parametrize(
    "first",
    [None, "not json", json.dumps({"type": "auth", "token": "forged"}), json.dumps({"type": "subscribe"})],
)
@pytest.mark.invalid_frames
async def test_authentication_is_the_first_message(live, first):
    app, host, w = live
    async with websockets.connect(f"ws://{host}/api/v1/events", compression=None) as ws:
        if first is not None:
            await ws.send(first)
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["type"] == "error" and reply["code"] in ("invalid_token", "auth_required")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 1008


@pytest.mark.parametrize("how", ["logout", "disable", "password_reset"])
async def test_socket_closes_when_the_sign_in_ends(live, how):
    app, host, w = live
    pair = await w.login("a-coordinator")
    async with EventClient.connect(host, pair["access_token"]) as events:
        if how == "logout":
            done = await w.client.post(
                "/api/v1/auth/logout", headers={"Authorization": f"Bearer {pair['access_token']}"}
            )
        else:
            done = await w.client.patch(
                f"/api/v1/orgs/{w.orgs['A']}/users/{w.users['a-coordinator']}",
                json={"is_active": False} if how == "disable" else {"password": "a-new-password-9"},
                headers=await w.headers("a-org_admin"),
            )
        assert done.status_code in (200, 204)
        reply = json.loads(await asyncio.wait_for(events.ws.recv(), 5))
        assert reply == {"type": "error", "code": "session_ended", "message": reply["message"]}
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(events.ws.recv(), 5)
        assert closed.value.rcvd.code == 1008


@pytest.mark.parametrize("how", ["disable", "delete"])
async def test_client_socket_closes_when_the_client_is_disabled_or_deleted(live, how):
    app, host, w = live
    admin = await w.headers("a-org_admin")
    base = f"/api/v1/orgs/{w.orgs['A']}/clients"
    made = (
        await w.client.post(base, json={"name": "bridge", "scopes": ["consults:queue"]}, headers=admin)
    ).json()
    form = {
        "grant_type": "client_credentials",
        "client_id": made["id"],
        "client_secret": made["client_secret"],
    }
    token = (await w.client.post("/api/v1/auth/token", data=form)).json()["access_token"]
    async with EventClient.connect(host, token) as events:
        if how == "disable":
            done = await w.client.patch(f"{base}/{made['id']}", json={"is_active": False}, headers=admin)
        else:
            done = await w.client.delete(f"{base}/{made['id']}", headers=admin)
        assert done.status_code in (200, 204), done.text
        reply = json.loads(await asyncio.wait_for(events.ws.recv(), 5))
        assert reply == {"type": "error", "code": "session_ended", "message": reply["message"]}
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(events.ws.recv(), 5)
        assert closed.value.rcvd.code == 1008


async def test_another_orgs_consult_heard_on_the_socket_is_in_that_orgs_audit(live):
    """offer.created carries the question, age and sex: a partner hearing it has read the owner's data."""
    from audit.sealer import seal_all

    app, host, w = live
    async with EventClient.connect(host, await w.token("b-specialist")) as events:
        created = (
            await w.client.post("/api/v1/consults", json=CONSULT, headers=await w.headers("a-clinician"))
        ).json()
        await events.wait_for("offer.created", consult_id=created["id"])
    async with EventClient.connect(host, await w.token("b-specialist"), last_event_id=0) as events:
        await events.wait_for("offer.created", consult_id=created["id"])  # and again, replayed
    await seal_all(app.state.sessionmaker)
    resp = await w.client.get("/api/v1/audit?action=events.read", headers=await w.headers("a-org_admin"))
    rows = [e for e in resp.json()["items"] if e["org_id"] == str(w.orgs["A"])]
    assert len(rows) >= 2, rows  # the live push and the replay
    assert {(e["actor_id"], e["resource_id"]) for e in rows} == {
        (str(w.users["b-specialist"]), created["id"])
    }
