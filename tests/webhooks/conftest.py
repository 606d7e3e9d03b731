"""Webhook tests: a real HTTP receiver on loopback that verifies every delivery with the
`standardwebhooks` library, fast retries, and an endpoint registered for org A."""

import asyncio
import json
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import pytest
import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.consults.conftest import CONSULT
from tests.live import put_on_call

ALL_EVENTS = [
    "consult.created",
    "consult.offered",
    "consult.accepted",
    "consult.escalated",
    "consult.unassigned",
    "consult.completed",
    "consult.cancelled",
    "message.created",
    "call.started",
    "call.ended",
]
FAST = {
    "escalation_poll_seconds": 0.05,
    "webhooks_poll_seconds": 0.2,
    "webhooks_allow_private_addresses": True,
    "webhooks_retry_base_seconds": 0.2,
    "webhooks_retry_max_seconds": 5.0,
    # Long enough that a loaded machine (two test workers beside each other) does not time a
    # delivery out and retry it, which a test counting deliveries would see; the one test of a
    # receiver that hangs waits this long once.
    "webhooks_timeout_seconds": 5.0,
}


@pytest.fixture
def settings_overrides() -> dict:
    return dict(FAST)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    """Answers each request by its script (a status, or "hang": never answer), then 200."""

    script: list = field(default_factory=list)
    got: list[Received] = field(default_factory=list)
    url: str = ""
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.got.append(Received(headers, body))
        self._arrived.set()
        answer = self.script.pop(0) if self.script else 200
        if answer == "hang":  # until the sender gives up and hangs up
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        await send({"type": "http.response.start", "status": answer, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def wait(self, predicate, timeout: float = 20.0) -> list[Received]:
        """Wait until `predicate(got)` holds; the deliveries so far."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate(self.got):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"receiver: condition not met; got {[r.json['type'] for r in self.got]}")
            self._arrived.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), min(left, 0.5))
        return self.got

    def types(self) -> list[str]:
        return [r.json["type"] for r in self.got]


def verify(received: Received, secret: str) -> dict:
    """The payload, if the delivery's signature verifies under `secret` (raises otherwise)."""
    return Webhook(secret).verify(received.body, received.headers)


def verifies(received: Received, secret: str) -> bool:
    try:
        verify(received, secret)
        return True
    except WebhookVerificationError:
        return False


@asynccontextmanager
async def receiving(path: str = "/hook"):
    """A receiver served by uvicorn on a free loopback port."""
    receiver = Receiver()
    config = uvicorn.Config(receiver, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    receiver.url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}{path}"
    try:
        yield receiver
    finally:
        server.should_exit = True
        server.force_exit = True
        await asyncio.wait_for(task, 10)


@pytest.fixture
async def receiver():
    async with receiving() as r:
        yield r


async def register(world, url: str, *, events=None, org: str = "A", **extra) -> dict:
    resp = await world.client.post(
        f"/api/v1/orgs/{world.orgs[org]}/webhooks",
        json={"url": url, "event_types": events or ALL_EVENTS} | extra,
        headers=await world.headers(f"{org.lower()}-org_admin"),
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


async def on_call(app, world) -> None:
    await put_on_call(
        app.state.sessionmaker,
        org_id=world.orgs["B"],
        user_ids=[world.users["b-specialist"]],
        specialty=CONSULT["specialty"],
        max_concurrent=1000,
    )


async def new_consult(world, body: dict | None = None) -> dict:
    resp = await world.client.post(
        "/api/v1/consults", json=body or CONSULT, headers=await world.headers("a-clinician")
    )
    assert resp.status_code == 201, resp.text
    return resp.json()
