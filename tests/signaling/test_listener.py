"""The dedicated signaling port: the same server, its limits enforced by `websockets`."""

import asyncio
import json

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from tests.live import accepted_consult, free_port, live_world
from tests.signaling.test_smoke import CONSULT, SDP, recv, token


@pytest.fixture
async def call(env):
    if env["name"] != "embedded":
        pytest.skip("the listener is the same code on either database")
    port = free_port()
    async with live_world(env, signaling_port=port, allowed_origins=["https://clinic.example"]) as (
        app,
        host,
        w,
    ):
        yield w, await accepted_consult(app, w, CONSULT), port


@pytest.mark.invalid_frames  # an oversize frame, on purpose
async def test_call_token_names_the_port_and_peers_relay_there(call):
    w, consult, port = call
    a, b = await token(w, consult, "a-clinician"), await token(w, consult, "b-specialist")
    assert a["signaling_url"] == f"ws://127.0.0.1:{port}/api/v1/signaling"
    async with (
        websockets.connect(a["signaling_url"], compression=None, origin="https://clinic.example") as wa,
        websockets.connect(b["signaling_url"], compression=None) as wb,
    ):
        await wa.send(json.dumps({"type": "join", "token": a["token"]}))
        ja = await recv(wa)
        await wb.send(json.dumps({"type": "join", "token": b["token"]}))
        jb = await recv(wb)
        assert (await recv(wa))["type"] == "peer-joined"
        await wb.send(json.dumps({"type": "offer", "to": ja["peer_id"], "sdp": SDP}))
        assert await recv(wa) == {"type": "offer", "from": jb["peer_id"], "sdp": SDP}
        await wa.send("x" * 70_000)  # over the 64 KiB limit
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(wa.recv(), 5)
        assert closed.value.rcvd.code == 1009
        # cut off by the server, not gone of its own will: shown reconnecting (it may resume)
        assert (await recv(wb))["state"] == "reconnecting"
        await wb.send(json.dumps({"type": "ping"}))
        assert (await recv(wb))["type"] == "pong"  # the other peer is still served


@pytest.mark.parametrize(
    "origin, path, status", [("https://evil.example", "/api/v1/signaling", 403), (None, "/elsewhere", 404)]
)
async def test_refused_before_the_handshake(call, origin, path, status):
    w, consult, port = call
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"ws://127.0.0.1:{port}{path}", origin=origin):
            pass
    assert refused.value.response.status_code == status
