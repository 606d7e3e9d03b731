"""Two participants of an accepted consult meet in its room and exchange offer/answer/candidates."""

import asyncio
import json

import pytest
import websockets

from tests.live import accepted_consult, live_world

CONSULT = {"specialty": "trauma-surgery", "urgency": "emergent", "question": "q", "patient_ref": "P-1"}
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


@pytest.fixture
async def call(env):
    async with live_world(env) as (app, host, w):
        yield app, host, w, await accepted_consult(app, w, CONSULT)


async def token(w, consult, who):
    resp = await w.client.post(f"/api/v1/consults/{consult['id']}/call-token", headers=await w.headers(who))
    assert resp.status_code == 200, resp.text
    return resp.json()


async def recv(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), 5))


async def test_two_peers_relay(call):
    app, host, w, consult = call
    a, b = await token(w, consult, "a-clinician"), await token(w, consult, "b-specialist")
    assert a["ice_servers"] == [] and a["room"] == f"consult-{consult['id']}"
    async with (
        websockets.connect(f"ws://{host}/api/v1/signaling", compression=None) as wa,
        websockets.connect(f"ws://{host}/api/v1/signaling", compression=None) as wb,
    ):
        await wa.send(json.dumps({"type": "join", "token": a["token"]}))
        joined_a = await recv(wa)
        assert joined_a["type"] == "joined" and joined_a["peers"] == []
        await wb.send(json.dumps({"type": "join", "token": b["token"]}))
        joined_b = await recv(wb)
        assert [p["peer_id"] for p in joined_b["peers"]] == [joined_a["peer_id"]]
        assert (await recv(wa))["type"] == "peer-joined"
        await wb.send(json.dumps({"type": "offer", "to": joined_a["peer_id"], "sdp": SDP}))
        got = await recv(wa)
        assert got == {"type": "offer", "from": joined_b["peer_id"], "sdp": SDP}
        await wa.send(
            json.dumps(
                {
                    "type": "candidate",
                    "to": joined_b["peer_id"],
                    "candidate": "candidate:1 1 udp 1 1.2.3.4 5 typ host",
                    "sdpMid": "0",
                    "sdpMLineIndex": 0,
                }
            )
        )
        assert (await recv(wb))["from"] == joined_a["peer_id"]
        await wa.send(json.dumps({"type": "offer", "to": "nobody", "sdp": SDP}))
        assert (await recv(wa))["code"] == "unknown_peer"
        await wb.send(json.dumps({"type": "leave"}))
        assert (await recv(wa))["type"] == "peer-left"
    reused = await asyncio.wait_for(_join_again(host, a["token"]), 5)
    assert reused["code"] == "token_used"
    for _ in range(100):  # the call's record, written shortly after the joins, put the consult in session
        detail = (
            await w.client.get(f"/api/v1/consults/{consult['id']}", headers=await w.headers("a-clinician"))
        ).json()
        if detail["status"] != "accepted":
            break
        await asyncio.sleep(0.05)
    assert detail["status"] == "in_session"


async def _join_again(host, tok):
    async with websockets.connect(f"ws://{host}/api/v1/signaling", compression=None) as ws:
        await ws.send(json.dumps({"type": "join", "token": tok}))
        return await recv(ws)
