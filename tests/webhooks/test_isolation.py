"""One endpoint's receiver hanging holds up only that endpoint: the others keep hearing."""

import asyncio

import pytest

from tests.webhooks.conftest import FAST, new_consult, receiving, register, verify


@pytest.fixture
def settings_overrides() -> dict:
    # A send may take a minute: far longer than the receivers below are waited for.
    return FAST | {"webhooks_timeout_seconds": 60.0}


async def test_a_hanging_receiver_does_not_delay_another_endpoint(world):
    release = asyncio.Event()
    async with receiving() as slow, receiving() as fast:
        slow.script = [release] * 3
        await register(world, slow.url, events=["consult.created"])
        mine = await register(world, fast.url, events=["consult.created"])
        first = await new_consult(world)
        await slow.wait(lambda g: len(g) == 1)  # the slow endpoint's first send now hangs
        second = await new_consult(world)
        third = await new_consult(world)
        got = await fast.wait(lambda g: len(g) == 3)
        assert not release.is_set() and len(slow.got) == 1  # still hanging on the first
        consults = [verify(r, mine["secret"])["data"]["consult_id"] for r in got]
        assert sorted(consults) == sorted(c["id"] for c in (first, second, third))
        release.set()
        await slow.wait(lambda g: len(g) == 3)
