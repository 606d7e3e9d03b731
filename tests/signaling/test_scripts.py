"""The fabric's Lua scripts take their KEYS and ARGV from one description each (signaling.fabric.lua):
the script's input lines and the caller's lists come from the same fields, no body indexes KEYS or
ARGV itself, and a description that could not be called right is refused when it is declared."""

import json
import re

import pytest
from redis.asyncio import Redis

from signaling.fabric import scripts
from signaling.fabric.ledger import LedgerStep
from signaling.fabric.lua import Script, arg, key, part, rest, script


@script(body="return {room_key, other_key, me, count, entries[1], #entries}")
class Echo(Script):
    room_key: str = key()
    me: str = arg()
    count: int = arg()
    other_key: str = key()  # keys and args may interleave: each keeps its own order
    entries: tuple[str, ...] = rest()


def test_inputs_become_locals_in_their_order():
    assert Echo.KEYS == ("room_key", "other_key") and Echo.ARGS == ("me", "count")
    assert Echo.SOURCE.splitlines()[:5] == [
        "local room_key = KEYS[1]",
        "local other_key = KEYS[2]",
        "local me = ARGV[1]",
        "local count = ARGV[2]",
        "local entries = {unpack(ARGV, 3)}",
    ]
    call = Echo(room_key="r", me="n", count=3, other_key="o", entries=("x", "y"))
    assert call.keys() == ["r", "o"]
    assert call.args() == ["n", 3, "x", "y"]


async def test_a_described_script_reads_what_its_caller_sent(redis_url):
    redis = Redis.from_url(redis_url)
    try:
        call = Echo(room_key="r", me="n", count=3, other_key="o", entries=("x", "y"))
        keys = call.keys()
        answer = await redis.eval(Echo.SOURCE, len(keys), *keys, *call.args())
        assert answer == [b"r", b"o", b"n", b"3", b"x", 2]
    finally:
        await redis.aclose()


def test_a_part_splices_its_inputs_and_its_body_in_place():
    @script(body="local got = tonumber(a) + 1")
    class Inner(Script):
        inner_key: str = key()
        a: int = arg()

    @script(body="local size = tonumber(bonus)\n-- part: inner\nreturn {inner_key, a, size, got}")
    class Whole(Script):
        bonus: int = arg()
        inner: Inner = part()

    assert Whole.KEYS == ("inner.inner_key",) and Whole.ARGS == ("bonus", "inner.a")
    call = Whole(bonus=5, inner=Inner(inner_key="k", a=1))
    assert (call.keys(), call.args()) == (["k"], [5, 1])
    lines = Whole.SOURCE.strip().splitlines()
    assert lines == [
        "local inner_key = KEYS[1]",
        "local bonus = ARGV[1]",
        "local a = ARGV[2]",
        "local size = tonumber(bonus)",
        "local got = tonumber(a) + 1",
        "return {inner_key, a, size, got}",
    ]


def test_a_description_that_could_not_be_called_right_is_refused():
    with pytest.raises(TypeError, match="declare it with"):

        @script(body="return 1")
        class Bare(Script):
            room_key: str  # neither key() nor arg()

    with pytest.raises(TypeError, match="last field"):

        @script(body="return 1")
        class RestFirst(Script):
            entries: tuple[str, ...] = rest()
            me: str = arg()

    with pytest.raises(TypeError, match="named twice or shadowing"):

        @script(body="return 1", reserved=frozenset({"now_ms"}))
        class Shadow(Script):
            now_ms: str = arg()

    with pytest.raises(TypeError, match="places the part"):

        @script(body="return verdict")
        class Unplaced(Script):
            ledger: LedgerStep = part()


@pytest.mark.parametrize("described", scripts.SCRIPTS, ids=lambda s: s.__name__)
def test_every_fabric_script_reads_its_inputs_by_name_only(described):
    body = described.BODY
    assert not re.search(r"\b(KEYS|ARGV)\s*\[", body), "a body indexes KEYS or ARGV itself"
    names = [p.rsplit(".", 1)[-1] for p in described.KEYS + described.ARGS] + (
        [described.REST] if described.REST else []
    )
    unused = [n for n in names if not re.search(rf"\b{n}\b", body)]
    assert not unused, f"inputs the script never reads: {unused}"
    prelude_end = described.SOURCE.index(body)
    declared = re.findall(r"^local (\w+) = (KEYS|ARGV)\[(\d+)\]", described.SOURCE[:prelude_end], re.M)
    assert [n for n, _, _ in declared] == names[: len(declared)]
    for table in ("KEYS", "ARGV"):
        assert [int(i) for _, t, i in declared if t == table] == list(
            range(1, 1 + sum(t == table for _, t, _ in declared))
        )


async def run(redis: Redis, call: Script):
    keys = call.keys()
    return await redis.eval(call.SOURCE, len(keys), *keys, *call.args())


async def test_a_heartbeat_read_before_a_leave_does_not_bring_the_peer_back(redis_url):
    """Issue #12 item 4: the heartbeat's pipeline and the leave travel on different connections; a
    beat that read the peer's entry before it left, arriving after the leave, must not re-enter it
    (and announce a ghost `peer-joined`). Its node's other peers are still refreshed."""
    redis = Redis.from_url(redis_url)
    room_key, channel = "liaison:sig:room:test-ghost", "liaison:sig:test:events"
    gone, stays = (f'{{"peer_id":"{p}","user_id":"u","node":"n1"}}' for p in ("p-gone", "p-stays"))
    beat = scripts.Heartbeat(
        room_key=room_key,
        me="n1",
        ttl_ms=10_000,
        key_ttl_ms=60_000,
        channel=channel,
        room="r",
        entries=(gone, stays),
    )
    try:
        await redis.delete(room_key)
        await run(redis, beat)
        async with redis.pubsub() as pubsub:
            await pubsub.subscribe(channel)
            await pubsub.get_message(timeout=1)  # the subscription's confirmation
            leave = scripts.Leave(
                room_key=room_key, key_ttl_ms=60_000, channel=channel, room="r", peer_id="p-gone"
            )
            assert await run(redis, leave) == 1
            await run(redis, beat)  # the stale beat, still naming p-gone
            heard = []
            while (message := await pubsub.get_message(timeout=0.3)) is not None:
                heard.append(json.loads(message["data"])["event"])
        assert heard == ["peer-left"]
        assert not await redis.hexists(room_key, "p-gone") and await redis.hexists(room_key, "p-stays")
        assert await redis.pttl(room_key) > 0
    finally:
        await redis.delete(room_key)
        await redis.aclose()
