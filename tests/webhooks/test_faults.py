"""No delivery is lost when the node that would send it is SIGKILLed, or while Redis is down: the
event log, the endpoint's cursor and the deliveries are rows, and Redis only wakes the worker."""

from collections import Counter

import pytest

from tests.conftest import scratch_database
from tests.consults.conftest import CONSULT
from tests.faults import PrivateRedis, assert_clean_log, node_for, seeded, sign_in
from tests.live import http
from tests.webhooks.conftest import FAST, verify

EVENTS = ["consult.created", "consult.offered"]


@pytest.fixture(scope="module")
async def scratch():
    async with scratch_database("liaison_webhook_faults") as made:
        yield made


async def create(c, headers: dict, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        resp = await c.post("/api/v1/consults", json=CONSULT, headers=headers)
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["id"])
    return ids


async def test_nothing_is_lost_across_a_sigkill_and_a_redis_restart(scratch, tmp_path, receiver):
    _, url = scratch
    redis = await PrivateRedis().start()
    settings = FAST | {"webhooks_timeout_seconds": 0.5}
    async with seeded(url):
        first = await node_for(url, tmp_path, redis.url, **settings).start()
        second = node_for(url, tmp_path, redis.url, **settings)
        try:
            admin, clinician = await sign_in(first, "a-org_admin", "a-clinician")
            async with http(first.host) as c:
                made = await c.post(
                    "/api/v1/orgs/{}/webhooks".format(
                        (await c.get("/api/v1/me", headers=admin)).json()["org_id"]
                    ),
                    json={"url": receiver.url, "event_types": EVENTS},
                    headers=admin,
                )
                assert made.status_code == 201, made.text
                endpoint = made.json()
                consults = await create(c, clinician, 3)
                await receiver.wait(lambda g: len(g) >= 6)
                redis.stop()  # events are sequenced and sent by polling the log now
                receiver.script = [500] * 4  # and some of them fail: retries are pending at the kill
                consults += await create(c, clinician, 3)
                await receiver.wait(lambda g: len(g) >= 8)
            first.kill()
            await redis.start()
            await second.start()
            async with http(second.host) as c:
                consults += await create(c, clinician, 3)
            expected = {(t, cid) for cid in consults for t in EVENTS}
            await receiver.wait(
                lambda g: {(r.json["type"], r.json["data"]["consult_id"]) for r in g} >= expected, 60
            )
        finally:
            first.stop()
            second.stop()
            redis.stop()
    payloads = [verify(r, endpoint["secret"]) for r in receiver.got]  # every one signed
    assert {(p["type"], p["data"]["consult_id"]) for p in payloads} == expected
    by_id = Counter(r.id for r in receiver.got)
    assert len(by_id) == len(expected)  # one webhook-id per event, retries included
    sequences = sorted({p["sequence"] for p in payloads})
    assert sequences == list(range(1, len(expected) + 1))  # gap-free: nothing skipped
    assert_clean_log(second)
