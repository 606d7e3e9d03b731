"""An integration client's events socket: its org's events that its scopes cover, nothing else."""

import asyncio

from tests.auth.test_clients import bearer, create_client, token_for
from tests.events.conftest import CONSULT
from tests.live import EventClient


async def client_token(w, scopes: list[str], org: str = "A") -> tuple[str, str]:
    made = (await create_client(w, scopes, admin=f"{org.lower()}-org_admin", org=org)).json()
    return made["id"], await token_for(w, {"client_id": made["id"], "client_secret": made["client_secret"]})


async def test_a_client_follows_the_consults_it_requested(live):
    app, host, w = live
    cid, token = await client_token(w, ["consults:create"])
    body = CONSULT | {"on_behalf_of": str(w.users["a-clinician"])}
    async with EventClient.connect(host, token) as events:
        created = (await w.client.post("/api/v1/consults", json=body, headers=bearer(token))).json()
        await events.wait_for("consult.status", consult_id=created["id"], status="offered")
        accepted = await w.client.post(
            f"/api/v1/consults/{created['id']}/accept", headers=await w.headers("b-specialist")
        )
        assert accepted.status_code == 200, accepted.text
        await events.wait_for("consult.status", consult_id=created["id"], status="accepted")
        posted = await w.client.post(
            f"/api/v1/consults/{created['id']}/messages",
            json={"body": "On my way"},
            headers=await w.headers("b-specialist"),
        )
        assert posted.status_code == 201, posted.text
        await events.wait_for("message.created", consult_id=created["id"])
        # Another clinician's consult is not this client's to follow.
        other = await w.client.post("/api/v1/consults", json=CONSULT, headers=await w.headers("a-clinician"))
        await asyncio.sleep(0.5)
        assert other.json()["id"] not in {e.get("consult_id") for e in events.events}


async def test_a_client_with_consults_queue_hears_its_orgs_queue_and_no_other(live):
    app, host, w = live
    _, queue = await client_token(w, ["consults:queue"])
    _, partner = await client_token(w, ["consults:queue", "consults:create"], org="B")
    _, outsider = await client_token(w, ["consults:queue", "consults:create"], org="C")
    async with (
        EventClient.connect(host, queue) as mine,
        EventClient.connect(host, partner) as partners,
        EventClient.connect(host, outsider) as theirs,
    ):
        created = (
            await w.client.post("/api/v1/consults", json=CONSULT, headers=await w.headers("a-clinician"))
        ).json()
        changed = await mine.wait_for("queue.changed", consult_id=created["id"])
        assert changed["data"]["status"] == "offered"
        await asyncio.sleep(0.5)
        # The partner org's specialist is offered it; the partner's client is not its queue's.
        for other in (partners, theirs):
            assert not [e for e in other.events if e.get("type") == "event"]


async def test_a_client_without_consult_scopes_hears_nothing(live):
    app, host, w = live
    _, token = await client_token(w, ["users:read", "rosters:read"])
    async with EventClient.connect(host, token) as events:
        await w.client.post("/api/v1/consults", json=CONSULT, headers=await w.headers("a-clinician"))
        await asyncio.sleep(0.5)
        assert not [e for e in events.events if e.get("type") == "event"]
