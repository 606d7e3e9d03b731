"""Catch-up under load: with writers committing in parallel (so in another order than their events'
insert ids), a subscriber that keeps reconnecting with the last id it saw receives every stored
event of its channel exactly once, in the log's order."""

import asyncio
import json
import random

import websockets
from sqlalchemy import select

from events.models import Event, channel_of_role, channel_of_user
from tests.events.conftest import CONSULT
from tests.live import http

WRITERS, EACH = 8, 8


class Flapper:
    """Connects, listens for 50-400 ms, drops the link, reconnects with the last id seen."""

    def __init__(self, host: str, token: str) -> None:
        self.host, self.token = host, token
        self.got: list[dict] = []
        self.last: int | None = None

    async def session(self, seconds: float) -> None:
        async with websockets.connect(f"ws://{self.host}/api/v1/events", compression=None) as ws:
            hello = {"type": "auth", "token": self.token, "last_event_id": self.last or 0}
            await ws.send(json.dumps(hello))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ready"
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            while (left := end - loop.time()) > 0:
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), left))
                except TimeoutError:
                    break
                if frame.get("type") == "event":
                    self.got.append(frame)
                    self.last = frame["id"]

    async def run(self, done: asyncio.Event, rng: random.Random) -> None:
        while not done.is_set():
            await self.session(rng.uniform(0.05, 0.4))
        await self.session(1.5)  # a last visit once every writer is done, to collect the tail


async def test_reconnecting_subscribers_miss_nothing_and_see_nothing_twice(live):
    app, host, w = live
    rng = random.Random(9)
    flappers = {
        channel_of_user(w.users["b-specialist"]): Flapper(host, await w.token("b-specialist")),
        channel_of_role(w.orgs["A"], "coordinator"): Flapper(host, await w.token("a-coordinator")),
    }
    headers = await w.headers("a-clinician")
    done = asyncio.Event()
    listening = [asyncio.create_task(f.run(done, rng)) for f in flappers.values()]

    async def writer(client) -> None:
        for _ in range(EACH):
            assert (await client.post("/api/v1/consults", json=CONSULT, headers=headers)).status_code == 201

    async with http(host) as client:
        await asyncio.gather(*(writer(client) for _ in range(WRITERS)))
    done.set()
    await asyncio.wait_for(asyncio.gather(*listening), 60)

    async with app.state.sessionmaker() as session:
        for channel, flapper in flappers.items():
            stored = list(
                (
                    await session.execute(
                        select(Event.pos).where(Event.channel == channel).order_by(Event.pos)
                    )
                ).scalars()
            )
            assert len(stored) >= WRITERS * EACH
            assert [e["id"] for e in flapper.got] == stored, f"{channel}: delivered ≠ stored"
