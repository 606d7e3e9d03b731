"""Deliveries, verified by the Standard Webhooks library at a real receiver on loopback: what an
org's consults send, retries with growing delays, redelivery, secret rotation, the org boundary."""

import asyncio

import pytest
from sqlalchemy import event

from tests.webhooks.conftest import FAST, new_consult, on_call, receiving, register, verifies, verify


async def accept(world, consult: dict) -> None:
    resp = await world.client.post(
        f"/api/v1/consults/{consult['id']}/accept", headers=await world.headers("b-specialist")
    )
    assert resp.status_code == 200, resp.text


async def delivery_log(world, endpoint: dict, **query) -> list[dict]:
    resp = await world.client.get(
        f"/api/v1/orgs/{endpoint['org_id']}/webhooks/{endpoint['id']}/deliveries",
        params=query,
        headers=await world.headers("a-org_admin"),
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


async def settled_log(world, endpoint: dict, timeout: float = 20.0) -> list[dict]:
    """The delivery log once nothing in it is pending (a receiver hears before the result is stored)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        log = await delivery_log(world, endpoint)
        if all(d["status"] != "pending" for d in log):
            return log
        assert asyncio.get_running_loop().time() < deadline, log
        await asyncio.sleep(0.1)


async def delivery(world, endpoint: dict, delivery_id: str) -> dict:
    resp = await world.client.get(
        f"/api/v1/orgs/{endpoint['org_id']}/webhooks/{endpoint['id']}/deliveries/{delivery_id}",
        headers=await world.headers("a-org_admin"),
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_a_consults_life_reaches_the_endpoint_signed_and_in_order(app, world, receiver):
    endpoint = await register(world, receiver.url)
    await on_call(app, world)
    consult = await new_consult(world)
    await accept(world, consult)
    got = await receiver.wait(lambda g: len(g) >= 3)
    payloads = [verify(r, endpoint["secret"]) for r in got]
    assert [p["type"] for p in payloads] == ["consult.created", "consult.offered", "consult.accepted"]
    assert [p["sequence"] for p in payloads] == [1, 2, 3]
    assert all(p["data"]["consult_id"] == consult["id"] for p in payloads)
    assert payloads[2]["data"]["assigned_to"] == str(world.users["b-specialist"])
    assert "question" not in payloads[0]["data"]  # no clinical text unless the org opts in
    assert len({r.id for r in got}) == 3
    log = await settled_log(world, endpoint)
    assert {d["webhook_id"] for d in log} == {r.id for r in got}
    assert {d["status"] for d in log} == {"delivered"}


async def test_a_message_stored_for_two_readers_is_one_delivery_with_text_only_if_opted_in(
    app, world, receiver
):
    async with receiving() as clinical:
        plain = await register(world, receiver.url, events=["message.created"])
        opted = await register(world, clinical.url, events=["message.created"], include_clinical=True)
        await on_call(app, world)
        consult = await new_consult(world)
        await accept(world, consult)
        # a coordinator's message is news for both the requester and the assignee: two stored events
        for author in ("b-specialist", "a-clinician"):
            resp = await world.client.post(
                f"/api/v1/consults/{consult['id']}/messages",
                json={"body": f"from {author}"},
                headers=await world.headers(author),
            )
            assert resp.status_code == 201, resp.text
        await receiver.wait(lambda g: len(g) >= 2)
        await clinical.wait(lambda g: len(g) >= 2)
        await asyncio.sleep(0.5)  # room for a duplicate to arrive, were one sent
        bare = [verify(r, plain["secret"])["data"] for r in receiver.got]
        full = [verify(r, opted["secret"])["data"] for r in clinical.got]
    assert len(bare) == len(full) == 2
    assert all("body" not in d for d in bare)
    assert [d["body"] for d in full] == ["from b-specialist", "from a-clinician"]


async def test_retries_after_500s_and_timeouts_wait_longer_each_time(app, world, receiver):
    receiver.script = [500, "hang", 503, 200]
    endpoint = await register(world, receiver.url, events=["consult.created"])
    await on_call(app, world)
    await new_consult(world)
    got = await receiver.wait(lambda g: len(g) >= 4)
    assert len({r.id for r in got}) == 1  # one delivery, attempted four times under one webhook-id
    assert all(verifies(r, endpoint["secret"]) for r in got)
    [row] = await settled_log(world, endpoint)
    detail = await delivery(world, endpoint, row["id"])
    tries = detail["attempt_log"]
    assert [t["status_code"] for t in tries] == [500, None, 503, 200]
    assert "no answer within" in tries[1]["error"]
    delays = [t["retry_in_seconds"] for t in tries[:3]]
    assert delays[0] < delays[1] < delays[2] and tries[3]["retry_in_seconds"] is None
    assert detail["status"] == "delivered" and detail["attempts"] == 4
    for before, after, delay in zip(tries, tries[1:], delays, strict=False):
        gap = (_at(after) - _at(before)).total_seconds()
        assert gap >= delay  # never sooner than scheduled (later, on a loaded machine, is fine)


def _at(attempt: dict):
    from datetime import datetime

    return datetime.fromisoformat(attempt["at"])


async def test_redelivery_sends_the_same_message_again(app, world, receiver):
    endpoint = await register(world, receiver.url, events=["consult.created"])
    await on_call(app, world)
    await new_consult(world)
    [first] = await receiver.wait(lambda g: len(g) >= 1)
    [row] = await settled_log(world, endpoint)
    resp = await world.client.post(
        f"/api/v1/orgs/{endpoint['org_id']}/webhooks/{endpoint['id']}/deliveries/{row['id']}/redeliver",
        headers=await world.headers("a-org_admin"),
    )
    assert resp.status_code == 202, resp.text
    got = await receiver.wait(lambda g: len(g) >= 2)
    assert got[1].id == first.id and got[1].body == first.body
    assert verifies(got[1], endpoint["secret"])
    await settled_log(world, endpoint)
    tries = (await delivery(world, endpoint, row["id"]))["attempt_log"]
    assert [t["manual"] for t in tries] == [False, True]


async def test_a_rotated_secret_signs_alongside_the_old_one_until_rotated_at_once(app, world, receiver):
    endpoint = await register(world, receiver.url, events=["consult.created"])
    base = f"/api/v1/orgs/{endpoint['org_id']}/webhooks/{endpoint['id']}"
    headers = await world.headers("a-org_admin")
    rotated = (await world.client.post(f"{base}/secret", headers=headers)).json()
    assert rotated["secret"] != endpoint["secret"] and rotated["previous_secret_until"]
    await on_call(app, world)
    await new_consult(world)
    [during] = await receiver.wait(lambda g: len(g) >= 1)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert verifies(during, rotated["secret"]) and verifies(during, endpoint["secret"])
    leaked = (await world.client.post(f"{base}/secret", params={"at_once": "true"}, headers=headers)).json()
    await new_consult(world)
    got = await receiver.wait(lambda g: len(g) >= 2)
    after = got[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert verifies(after, leaked["secret"])
    assert not verifies(after, rotated["secret"]) and not verifies(after, endpoint["secret"])


async def test_another_orgs_endpoint_hears_nothing_of_its_partners_consults(app, world, receiver):
    async with receiving() as partner:
        mine = await register(world, receiver.url, events=["consult.created", "consult.accepted"])
        await register(world, partner.url, org="B")
        await on_call(app, world)
        consult = await new_consult(world)
        await accept(world, consult)
        await receiver.wait(lambda g: len(g) >= 2)
        await asyncio.sleep(1.0)  # the worker polls every 0.2 s: B's endpoint had its chances
        assert partner.got == []
    # Receivers order by `sequence`: arrival order was once seen inverted on a loaded machine.
    bodies = sorted((verify(r, mine["secret"]) for r in receiver.got), key=lambda b: b["sequence"])
    assert [b["type"] for b in bodies] == ["consult.created", "consult.accepted"]
    assert [b["sequence"] for b in bodies] == [1, 2]


@pytest.mark.parametrize("events", [["consult.unassigned"], ["consult.cancelled", "consult.created"]])
async def test_only_the_chosen_events_are_sent(app, world, receiver, events):
    endpoint = await register(world, receiver.url, events=events)
    consult = await new_consult(world)  # nobody on call: straight to the coordinators' queue
    resp = await world.client.post(
        f"/api/v1/consults/{consult['id']}/cancel", headers=await world.headers("a-clinician")
    )
    assert resp.status_code == 200, resp.text
    want = (
        ["consult.unassigned"]
        if events == ["consult.unassigned"]
        else ["consult.created", "consult.cancelled"]
    )
    got = await receiver.wait(lambda g: len(g) >= len(want))
    assert [verify(r, endpoint["secret"])["type"] for r in got] == want


# Only event wake-ups, no poll, within the test.
@pytest.mark.parametrize("settings_overrides", [FAST | {"webhooks_poll_seconds": 30}])
async def test_events_no_endpoint_takes_cost_no_query_after_the_first_look(app, world):
    """Every batch of events wakes every node's worker: with no endpoint enabled anywhere, one look
    until the next poll, not one per batch."""
    looks: list[str] = []

    def seen(_conn, _cursor, statement: str, *_args) -> None:
        if "webhook_endpoints" in statement:
            looks.append(statement)

    await on_call(app, world)
    event.listen(app.state.engine.sync_engine, "before_cursor_execute", seen)
    try:
        for _ in range(6):
            await new_consult(world)
            await asyncio.sleep(0.05)  # each its own batch, its own wake-up
        await asyncio.sleep(0.3)
    finally:
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", seen)
    assert 1 <= len(looks) <= 2, looks  # the first wake-up looks (a second may race the first's end)


async def test_an_endpoint_registered_while_the_worker_is_idle_is_fed_from_the_next_poll(
    app, world, receiver
):
    await on_call(app, world)
    await new_consult(world)  # the worker looks: no endpoint, and stays idle till its next poll
    await asyncio.sleep(0.05)
    endpoint = await register(world, receiver.url, events=["consult.created"])
    consult = await new_consult(world)
    got = await receiver.wait(lambda g: len(g) >= 1)
    assert verify(got[0], endpoint["secret"])["data"]["consult_id"] == consult["id"]


async def test_a_retry_is_sent_while_events_no_endpoint_takes_keep_waking_the_worker(app, world, receiver):
    """Wake-ups that feed nothing skip the send; the poll still comes, however often they arrive."""
    await register(world, receiver.url, events=["consult.created"])
    receiver.script = [500]  # the first attempt fails; its retry is due 0.2 s later
    await on_call(app, world)
    consult = await new_consult(world)
    await accept(world, consult)
    await receiver.wait(lambda g: len(g) >= 1)
    for i in range(60):  # a message every 50+ ms for 3+ s: news the endpoint does not take
        resp = await world.client.post(
            f"/api/v1/consults/{consult['id']}/messages",
            json={"body": f"note {i}"},
            headers=await world.headers("a-clinician"),
        )
        assert resp.status_code == 201, resp.text
        await asyncio.sleep(0.05)
        if len(receiver.got) >= 2:
            break
    got = receiver.got
    assert len(got) >= 2, "the retry waited for the wake-ups to stop"
    assert got[0].id == got[1].id  # the same delivery, retried


async def test_a_receiver_that_hangs_holds_up_only_its_own_endpoint(app, world, receiver):
    """Another endpoint's deliveries arrive while the hanging one waits out its 5 s timeout."""
    async with receiving() as stuck:
        stuck.script = ["hang"]
        await register(world, stuck.url, events=["consult.created"])
        await register(world, receiver.url, events=["consult.created"])
        await on_call(app, world)
        started = asyncio.get_running_loop().time()
        first = await new_consult(world)
        await receiver.wait(lambda g: len(g) >= 1)
        second = await new_consult(world)  # due for both endpoints while the first send hangs
        got = await receiver.wait(lambda g: len(g) >= 2)
        waited = asyncio.get_running_loop().time() - started
        assert [r.json["data"]["consult_id"] for r in got] == [first["id"], second["id"]]
        assert waited < FAST["webhooks_timeout_seconds"], waited
        # Still hanging on the first: the second is not sent to it before that send ends.
        assert [r.json["data"]["consult_id"] for r in stuck.got] == [first["id"]]
        # Once it times out, the hung endpoint gets both, in order (the first as a retry).
        late = await stuck.wait(lambda g: len({r.json["data"]["consult_id"] for r in g}) >= 2)
        assert [r.json["data"]["consult_id"] for r in late][-1] == second["id"]
