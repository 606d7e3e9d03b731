"""Idempotency-Key on consult creation."""

import asyncio

from sqlalchemy import func, select

from consults.models import Consult
from tests.consults.conftest import CONSULT


async def count(app) -> int:
    async with app.state.sessionmaker() as session:
        return (await session.execute(select(func.count()).select_from(Consult))).scalar_one()


async def test_ten_retries_make_one_consult(app, world):
    headers = await world.headers("a-clinician") | {"Idempotency-Key": "retry-7f3a"}
    answers = [await world.client.post("/api/v1/consults", json=CONSULT, headers=headers) for _ in range(10)]
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    assert [a.headers.get("Idempotent-Replayed") for a in answers] == [None] + ["true"] * 9
    assert await count(app) == 1


async def test_same_key_other_body_is_refused(app, world):
    headers = await world.headers("a-clinician") | {"Idempotency-Key": "k-1"}
    assert (await world.client.post("/api/v1/consults", json=CONSULT, headers=headers)).status_code == 201
    other = await world.client.post("/api/v1/consults", json=CONSULT | {"patient_age": 28}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert await count(app) == 1


async def test_a_replay_answers_the_first_answer_though_the_consult_moved_on(app, world):
    """SPEC: a retry over a flaky link gets the first answer, not the consult as it is now."""
    headers = await world.headers("a-clinician") | {"Idempotency-Key": "before-cancel"}
    first = await world.client.post("/api/v1/consults", json=CONSULT, headers=headers)
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    cancelled = await world.client.post(f"/api/v1/consults/{first.json()['id']}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    replay = await world.client.post("/api/v1/consults", json=CONSULT, headers=headers)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.headers["content-type"] == first.headers["content-type"]
    assert replay.json() == first.json() and first.json()["status"] != "cancelled"
    other = await world.client.post("/api/v1/consults", json=CONSULT | {"patient_age": 28}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert await count(app) == 1


async def test_keys_are_per_requester(app, world):
    for who in ("a-clinician", "b-clinician"):
        headers = await world.headers(who) | {"Idempotency-Key": "shared"}
        assert (await world.client.post("/api/v1/consults", json=CONSULT, headers=headers)).status_code == 201
    assert await count(app) == 2


async def test_concurrent_duplicates_make_one_consult(app, world):
    headers = await world.headers("a-clinician") | {"Idempotency-Key": "burst"}
    answers = await asyncio.gather(
        *(world.client.post("/api/v1/consults", json=CONSULT, headers=headers) for _ in range(8))
    )
    assert {a.status_code for a in answers} <= {201, 409}
    assert len({a.json()["id"] for a in answers if a.status_code == 201}) == 1
    assert await count(app) == 1
