"""Tokens never travel in URLs: a handshake carrying one is refused before the upgrade on both
listeners, and the real server's log never prints it (issue #12, item 2)."""

import asyncio

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from api.logs import scrub, token_in_query
from tests.conftest import TEST_SECRET, make_settings
from tests.live import Node, accepted_consult, free_port, http
from tests.signaling.test_smoke import CONSULT, token


@pytest.mark.parametrize(
    "query, refused",
    [
        ("token=abc", True),
        ("access_token=abc", True),
        ("JWT=abc", True),
        ("x=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", True),
        ("last_event_id=42", False),
        ("", False),
        ("room=consult-1&v=2", False),
    ],
)
def test_token_like_queries_are_recognised(query, refused):
    assert token_in_query(query) is refused


def test_scrub_cuts_queries_and_jwts():
    line = '127.0.0.1:5 - "GET /api/v1/events?token=secret HTTP/1.1" 200 eyJabcdefgh.eyJabcdefgh.sig'
    assert scrub(line) == '127.0.0.1:5 - "GET /api/v1/events?[redacted] HTTP/1.1" 200 [redacted]'


async def refused_status(url: str) -> int:
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(url, open_timeout=10):
            pass
    return refused.value.response.status_code


async def test_both_listeners_refuse_url_tokens_and_the_log_keeps_none(app, world, env, tmp_path):
    if env["name"] != "embedded":
        pytest.skip("the refusal and the log are the same code on either database")
    consult = await accepted_consult(app, world, CONSULT)
    call = (await token(world, consult, "a-clinician"))["token"]
    access = await world.token("b-specialist")
    port = free_port()
    settings = make_settings(env["database_url"], None, jwt_secret=TEST_SECRET, signaling_port=port)
    node = await Node(settings, log=tmp_path / "node.log").start()
    try:
        api = f"ws://{node.host}/api/v1"
        for url in (
            f"{api}/signaling?token={call}",
            f"{api}/signaling?x={call}",
            f"{api}/events?access_token={access}",
            f"{api}/events?token=plain-secret-value",
            f"ws://127.0.0.1:{port}/api/v1/signaling?token={call}",
            f"ws://127.0.0.1:{port}/?jwt={access}",
        ):
            assert await refused_status(url) == 403, url
        async with http(node.host) as c:  # a plain request's access line keeps its path, not its query
            assert (await c.get(f"/healthz?token={call}")).status_code == 200
        async with websockets.connect(f"{api}/signaling") as ws:  # no token: the socket still opens
            await ws.close()
        await asyncio.sleep(0.3)  # let the access lines reach the file
    finally:
        node.stop()
    log = node.log_text()
    assert "/healthz?[redacted]" in log and "WebSocket /api/v1/signaling" in log, log[-2000:]
    for secret in (call, access, "plain-secret-value", call.split(".")[2], access.split(".")[2]):
        assert secret not in log
