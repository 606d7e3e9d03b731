"""An endpoint that keeps failing is disabled, audited, and its org admins told; re-enabled, it resumes."""

import pytest
from sqlalchemy import select
from sqlmodel import col

from events.models import Event, channel_of_user
from tests.webhooks.conftest import FAST, new_consult, register, verify

LIMIT = 3


@pytest.fixture
def settings_overrides() -> dict:
    return FAST | {"webhooks_disable_after_failures": LIMIT, "webhooks_retry_base_seconds": 0.1}


async def test_repeated_failure_disables_the_endpoint_and_tells_its_admins(app, world, receiver):
    receiver.script = [500] * LIMIT
    endpoint = await register(world, receiver.url, events=["consult.created"])
    one = f"/api/v1/orgs/{endpoint['org_id']}/webhooks/{endpoint['id']}"
    headers = await world.headers("a-org_admin")
    await new_consult(world)
    await receiver.wait(lambda g: len(g) >= LIMIT)
    for _ in range(200):
        state = (await world.client.get(one, headers=headers)).json()
        if not state["enabled"]:
            break
        await receiver.wait(lambda g: True, timeout=0.1)
    assert state["enabled"] is False and state["disabled_reason"].startswith("failing")
    assert state["consecutive_failures"] == LIMIT
    trail = (
        await world.client.get("/api/v1/audit", params={"action": "webhook.disable"}, headers=headers)
    ).json()
    assert [(r["actor_type"], r["resource_id"]) for r in trail["items"]] == [("system", endpoint["id"])]
    async with app.state.sessionmaker() as session:
        told = (
            (
                await session.execute(
                    select(Event).where(
                        col(Event.type) == "webhook.disabled",
                        col(Event.channel) == channel_of_user(world.users["a-org_admin"]),
                    )
                )
            )
            .scalars()
            .all()
        )
    assert [e.data["endpoint_id"] for e in told] == [endpoint["id"]]
    assert len(receiver.got) == LIMIT  # nothing more went to a disabled endpoint
    # Re-enabled (the receiver answers 200 now), the pending delivery goes through.
    resumed = await world.client.patch(one, json={"enabled": True}, headers=headers)
    assert resumed.json()["enabled"] is True and resumed.json()["consecutive_failures"] == 0
    got = await receiver.wait(lambda g: len(g) >= LIMIT + 1)
    assert verify(got[-1], endpoint["secret"])["type"] == "consult.created"
