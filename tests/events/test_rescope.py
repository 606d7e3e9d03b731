"""A role change re-scopes the user's open event sockets at once, on every node: a coordinator
demoted stops hearing the queue on the sockets opened before, one promoted starts hearing it
without reconnecting (events.control.roles_changed, heard through the event log)."""

import asyncio
import json
import uuid

import pytest

from api.db import commit
from events.models import channel_of_role
from events.service import emit
from tests.conftest import make_settings, reset_env, seed_world
from tests.live import EventClient, http, serve

API = "/api/v1"
QUIET = {"specialty": "burns", "urgency": "emergent", "question": "q", "patient_ref": "P-1"}  # nobody on call


async def frame(events: EventClient, type_: str, timeout: float = 5.0) -> dict:
    """The next frame of that `type` (not an event), collecting events meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        got = json.loads(await asyncio.wait_for(events.ws.recv(), left))
        if got.get("type") == type_:
            return got
        events.events.append(got)
    raise AssertionError(f"no {type_} frame within {timeout}s")


async def queue_heard(app, w, sockets: list[EventClient]) -> list[bool]:
    """A new consult of A (its queue hears of it), then a marker to a-coordinator: for each socket,
    whether the queue event came before the marker."""
    consult = await w.client.post(f"{API}/consults", json=QUIET, headers=await w.headers("a-clinician"))
    assert consult.status_code == 201, consult.text
    marker = uuid.uuid4().hex
    async with app.state.sessionmaker() as session:
        await emit(
            session, user_ids=[w.users["a-coordinator"]], type="probe", consult_id=None, data={"m": marker}
        )
        await commit(session)
    heard = []
    for events in sockets:
        await events.wait_for("probe", m=marker)
        heard.append(
            any(
                e.get("event", "").startswith("queue.") and e["consult_id"] == consult.json()["id"]
                for e in events.events
            )
        )
    return heard


async def set_roles(w, roles: list[str]) -> None:
    resp = await w.client.patch(
        f"{API}/orgs/{w.orgs['A']}/users/{w.users['a-coordinator']}",
        json={"roles": roles},
        headers=await w.headers("a-org_admin"),
    )
    assert resp.status_code == 200, resp.text


async def test_demotion_and_promotion_reach_open_sockets_on_every_node(scaled):
    await reset_env(scaled)
    settings = make_settings(scaled["database_url"], scaled["redis_url"])
    async with serve(settings) as (app, one), serve(settings) as (_, two), http(one) as client:
        w = await seed_world(app, client)
        token = await w.token("a-coordinator")
        queue = channel_of_role(w.orgs["A"], "coordinator")
        async with EventClient.connect(one, token) as here, EventClient.connect(two, token) as there:
            assert await queue_heard(app, w, [here, there]) == [True, True]
            await set_roles(w, ["clinician"])
            for events in (here, there):
                assert queue not in (await frame(events, "rescoped"))["channels"]
            assert await queue_heard(app, w, [here, there]) == [False, False]
            await set_roles(w, ["clinician", "coordinator"])
            for events in (here, there):
                assert queue in (await frame(events, "rescoped"))["channels"]
            assert await queue_heard(app, w, [here, there]) == [True, True]


async def test_the_same_roles_again_order_nothing(scaled):
    await reset_env(scaled)
    settings = make_settings(scaled["database_url"], scaled["redis_url"])
    async with serve(settings) as (app, host), http(host) as client:
        w = await seed_world(app, client)
        async with EventClient.connect(host, await w.token("a-coordinator")) as events:
            await set_roles(w, ["coordinator"])
            with pytest.raises((TimeoutError, AssertionError)):
                await frame(events, "rescoped", timeout=1.0)
