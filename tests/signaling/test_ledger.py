"""The call ledger: single use, ends that send a token back to the database, and the limits of its memory,
in one process and through Redis; asked as the server asks it, through its fabric's admission."""

import asyncio
import time
import uuid

import pytest
from redis.asyncio import Redis

from api.errors import Unavailable
from signaling.core.admission import CallGrant, Verdict
from signaling.core.messages import ProtocolError
from signaling.fabric.ledger import LocalLedger, RedisLedger
from signaling.fabric.local import LocalFabric
from signaling.fabric.redis_fabric import RedisFabric
from tests.live import free_port


@pytest.fixture(params=["local", "redis"])
def store(request) -> str | None:
    """Where the ledger keeps things: None for this process's memory, else a Redis URL (sync, to pull in a session fixture)."""
    return request.getfixturevalue("redis_url") if request.param == "redis" else None


class Admitting:
    """A ledger with its fabric's admission, as the signaling server uses them."""

    def __init__(self, fabric) -> None:
        self.fabric, self.ledger = fabric, fabric.ledger

    async def admit(self, g: CallGrant) -> Verdict:
        admission = await self.fabric.admit(
            g, {"peer_id": "p1", "user_id": g.user_id}, max_peers=6, enter=False
        )
        assert admission.remote == [] and admission.entered is None  # nobody on another node; nobody entered
        return admission.verdict

    async def end(self, **marks) -> None:
        await self.ledger.end(**marks)


@pytest.fixture
async def ledger(store):
    if store is None:
        yield Admitting(LocalFabric(LocalLedger(leeway=0)))
        return
    redis = Redis.from_url(store)
    await redis.flushdb()
    ledger = RedisLedger(redis, leeway=0)
    await ledger.start()
    admitting = Admitting(RedisFabric(redis, ledger=ledger))
    yield admitting
    await admitting.fabric.stop()  # closes the fabric's own Redis connections
    await redis.aclose()


def grant(room: str = "consult-1", user: str = "u1", *, issued: float | None = None) -> CallGrant:
    iat = int(issued if issued is not None else time.time() + 1)  # after the ledger's start
    return CallGrant(user, "org", room, "c", uuid.uuid4().hex, iat, iat + 300)


async def test_a_token_is_spent_once(ledger):
    g = grant()
    assert await ledger.admit(g) is Verdict.FRESH
    with pytest.raises(ProtocolError) as refused:
        await ledger.admit(g)
    assert refused.value.code == "token_used"
    assert await ledger.admit(grant()) is Verdict.FRESH  # another token of the same user and room


async def test_an_end_sends_that_room_or_user_back_to_the_database(ledger):
    await ledger.end(rooms=("consult-1",))
    assert await ledger.admit(grant("consult-1", "u1")) is Verdict.RECHECK
    assert await ledger.admit(grant("consult-2", "u1")) is Verdict.FRESH
    await ledger.end(users=("u1",))
    assert await ledger.admit(grant("consult-2", "u1")) is Verdict.RECHECK
    assert await ledger.admit(grant("consult-2", "u2")) is Verdict.FRESH
    g = grant("consult-1")
    assert await ledger.admit(g) is Verdict.RECHECK
    with pytest.raises(ProtocolError):  # a token sent to the database is spent all the same
        await ledger.admit(g)


async def test_a_mark_lasts_as_long_as_a_token_could(ledger):
    assert ledger.ledger.horizon >= 300
    ledger.ledger.horizon = 1
    await ledger.end(rooms=("consult-1",))
    assert await ledger.admit(grant()) is Verdict.RECHECK
    await asyncio.sleep(1.2)
    assert await ledger.admit(grant()) is Verdict.FRESH


async def test_a_token_older_than_the_ledgers_memory_is_rechecked(ledger):
    assert await ledger.admit(grant(issued=time.time() - 5)) is Verdict.RECHECK


async def test_redis_losing_its_data_dates_the_memory_anew(redis_url):
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    ledger = Admitting(RedisFabric(redis, ledger=RedisLedger(redis, leeway=0)))
    await ledger.ledger.start()
    await redis.set(ledger.ledger.since_key, int(time.time()) - 60)  # as if it had run for a minute
    await ledger.end(rooms=("consult-1",))
    a_while_ago = time.time() - 5
    assert await ledger.admit(grant("consult-2", issued=a_while_ago)) is Verdict.FRESH
    await redis.flushdb()  # a restart without persistence: the mark on consult-1 is gone
    assert await ledger.admit(grant("consult-1", issued=a_while_ago)) is Verdict.RECHECK
    assert await ledger.admit(grant("consult-1")) is Verdict.FRESH  # issued after the loss
    await ledger.fabric.stop()
    await redis.aclose()


async def test_redis_not_answering_refuses_rather_than_guesses():
    redis = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5)
    ledger = Admitting(RedisFabric(redis, ledger=RedisLedger(redis, leeway=0)))
    with pytest.raises(Unavailable):
        await ledger.end(rooms=("consult-1",))
    with pytest.raises(ProtocolError) as refused:
        await ledger.admit(grant())
    assert refused.value.code == "fabric_unavailable"
    await ledger.fabric.stop()
    await redis.aclose()
