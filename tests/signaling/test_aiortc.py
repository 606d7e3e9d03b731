"""Real aiortc peers through the real server on 127.0.0.1: connect, talk, resume, add a third."""

import asyncio
import subprocess
import sys

import pytest
from sqlalchemy import select

from signaling.models import Attendance
from signaling.peers.client import CallClient
from signaling.peers.webrtc import ColorTrack, Mesh, frame_color
from tests.live import accepted_consult, free_port, live_world

# Both configurations: in the scaled one, presence and single-use tokens go through Redis.
both = pytest.mark.parametrize("env", ["embedded", "scaled"], indirect=True)

CONSULT = {"specialty": "trauma-surgery", "urgency": "emergent", "question": "q", "patient_ref": "P-1"}
COLORS = {"a-clinician": (200, 60, 180), "b-specialist": (90, 200, 60), "a-coordinator": (40, 120, 220)}


@pytest.fixture
async def call(env):
    async with live_world(env) as (app, host, w):
        yield app, host, w, await accepted_consult(app, w, CONSULT)


async def client_for(w, consult, who, **kwargs) -> CallClient:
    resp = await w.client.post(f"/api/v1/consults/{consult['id']}/call-token", headers=await w.headers(who))
    assert resp.status_code == 200, resp.text
    grant = resp.json()
    assert grant["ice_servers"] == []
    return CallClient(grant["signaling_url"], grant["token"], video=lambda: ColorTrack(COLORS[who]), **kwargs)


async def until(predicate, timeout: float = 5.0) -> None:
    async def poll():
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


def sees(link, who: str) -> bool:
    """The link has received video frames of that user's colour."""
    if link.frames < 5 or link.last_frame is None:
        return False
    return all(abs(a - b) <= 24 for a, b in zip(frame_color(link.last_frame), COLORS[who], strict=False))


async def talk(sender, receiver, text: str) -> None:
    """`sender` sends on its data channel to `receiver`, which gets it."""
    out, into = sender.links[receiver.peer_id], receiver.links[sender.peer_id]
    await asyncio.wait_for(out.channel_open.wait(), 5)
    out.send(text)
    assert await into.receive(5) == text


@both
async def test_clinician_and_specialist_connect_talk_and_see(call):
    app, host, w, consult = call
    async with (
        await client_for(w, consult, "a-clinician") as a,
        await client_for(w, consult, "b-specialist") as b,
    ):
        [la], [lb] = await a.wait_connected(1), await b.wait_connected(1)
        assert (la.peer_id, lb.peer_id) == (b.peer_id, a.peer_id)
        await talk(a, b, "hello from the clinician")
        await talk(b, a, "hello from the specialist")
        lb.send(b"\x00\x01binary")
        assert await la.receive() == b"\x00\x01binary"
        await until(lambda: sees(la, "b-specialist") and sees(lb, "a-clinician"))
        # trickle ICE: descriptions went without candidates, which came one by one, then end-of-candidates
        offer = next(m for m in a.seen if m["type"] == "offer")
        assert offer["from"] == b.peer_id and "a=candidate" not in offer["sdp"]
        candidates = [m for m in a.seen if m["type"] == "candidate"]
        assert [m for m in candidates if m["candidate"].startswith("candidate:")] and candidates[-1][
            "candidate"
        ] == ""
        # as browsers send them, each names its ICE username fragment, the one of the offer's m-line
        ufrag = next(line for line in offer["sdp"].splitlines() if line.startswith("a=ice-ufrag:"))[12:]
        assert {m["usernameFragment"] for m in candidates} == {ufrag}
        assert await a.ping() < 1.0
    assert a.done.is_set() and b.done.is_set() and la.pc.connectionState == "closed"
    for _ in range(100):  # the server records the leaving after the socket closes
        async with app.state.sessionmaker() as session:
            rows = (await session.execute(select(Attendance))).scalars().all()
        if rows and all(r.left_at for r in rows):
            break
        await asyncio.sleep(0.05)
    assert sorted(r.peer_id for r in rows) == sorted([a.peer_id, b.peer_id]) and all(r.left_at for r in rows)


@both
async def test_interpreter_joins_as_third_peer(call):
    app, host, w, consult = call
    invite = await w.client.post(
        f"/api/v1/consults/{consult['id']}/participants",
        headers=await w.headers("a-clinician"),
        json={"user_id": str(w.users["a-coordinator"]), "role": "interpreter"},
    )
    assert invite.status_code == 201, invite.text
    async with (
        await client_for(w, consult, "a-clinician") as a,
        await client_for(w, consult, "b-specialist") as b,
    ):
        await a.wait_connected(1)
        async with await client_for(w, consult, "a-coordinator") as i:
            for peer in (a, b, i):
                await peer.wait_connected(2)
            assert set(i.links) == {a.peer_id, b.peer_id}
            assert {m["user_id"] for m in a.seen if m["type"] == "peer-joined"} == {
                str(w.users["b-specialist"]),
                str(w.users["a-coordinator"]),
            }
            # the invited role travels in the call token: the others see who the interpreter is
            assert {(p["role"], p["name"]) for p in i.seen[0]["peers"]} == {
                ("requester", "a-clinician"),
                ("assignee", "b-specialist"),
            }
            assert {(m["role"], m["name"]) for m in a.seen if m["type"] == "peer-joined"} == {
                ("assignee", "b-specialist"),
                ("interpreter", "a-coordinator"),
            }
            for x, y in ((i, a), (i, b), (a, i), (b, i), (a, b)):
                await talk(x, y, f"{x.peer_id} to {y.peer_id}")
            await until(
                lambda: (
                    sees(i.links[a.peer_id], "a-clinician")
                    and sees(i.links[b.peer_id], "b-specialist")
                    and sees(a.links[i.peer_id], "a-coordinator")
                )
            )
        await until(
            lambda: i.peer_id not in a.links and i.peer_id not in b.links
        )  # peer-left closed those links
        await talk(a, b, "still here")


@both
async def test_cut_socket_resumes_and_call_continues(call):
    app, host, w, consult = call
    server = app.state.signaling
    async with (
        await client_for(w, consult, "a-clinician") as a,
        await client_for(w, consult, "b-specialist", resume_delay=0.5) as b,
    ):
        await a.wait_connected(1)
        await b.wait_connected(1)
        await talk(a, b, "before")
        peer_id, room = b.peer_id, a.room
        b.cut()
        await until(lambda: not server.rooms.local(room, peer_id).connected)  # the server saw the link go
        await talk(a, b, "during")  # the media path does not need signaling
        await talk(b, a, "during, back")
        # signaling sent to b meanwhile waits for it on the server
        await a._send(
            {"type": "candidate", "to": peer_id, "candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}
        )
        await until(lambda: b.resumes == 1)
        assert b.peer_id == peer_id and server.rooms.local(room, peer_id).connected
        resumed = b.seen.index(next(m for m in b.seen if m.get("resumed")))
        assert resumed > 0 and b.seen[resumed]["peers"] == [
            {
                "peer_id": a.peer_id,
                "user_id": str(w.users["a-clinician"]),
                "role": "requester",
                "name": "a-clinician",
                "state": "connected",
            }
        ]
        await until(lambda: len(b.seen) > resumed + 1)
        assert b.seen[resumed + 1] == {
            "type": "candidate",
            "from": a.peer_id,
            "candidate": "",
            "sdpMid": "0",
            "sdpMLineIndex": 0,
        }
        assert await b.ping() < 1.0
        await talk(a, b, "after")
        await talk(b, a, "after, back")
        assert b.links[a.peer_id].pc.connectionState == "connected"
        assert not [m for m in a.seen if m["type"] == "peer-left"]
        for _ in range(100):  # attendance is written shortly after the join
            async with app.state.sessionmaker() as session:
                rows = (
                    (await session.execute(select(Attendance).where(Attendance.peer_id == peer_id)))
                    .scalars()
                    .all()
                )
            if rows:
                break
            await asyncio.sleep(0.05)
        assert len(rows) == 1 and rows[0].left_at is None


async def test_cli_help():
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "signaling.peers.client", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "--precall" in done.stdout and "--token" in done.stdout


async def test_both_call_each_other_at_once():
    """Glare (two nodes may each see the other peer already there): the lower peer id's offer wins."""
    inboxes = {"a": asyncio.Queue(), "b": asyncio.Queue()}

    def sender(me):
        async def send(msg):
            inboxes[msg["to"]].put_nowait({**msg, "from": me})

        return send

    meshes = {me: Mesh(sender(me), []) for me in inboxes}
    for me, mesh in meshes.items():
        mesh.peer_id = me

    async def pump(me):
        while True:
            await meshes[me].handle(await inboxes[me].get())

    await asyncio.gather(meshes["a"].offer({"peer_id": "b"}), meshes["b"].offer({"peer_id": "a"}))
    pumps = [asyncio.create_task(pump(me)) for me in inboxes]
    try:
        first_b = meshes["b"].links["a"]
        await until(
            lambda: all(m.links[o].connected.is_set() for m, o in ((meshes["a"], "b"), (meshes["b"], "a"))),
            10,
        )
        a, b = meshes["a"].links["b"], meshes["b"].links["a"]
        await asyncio.wait_for(b.channel_open.wait(), 5)
        assert b is not first_b and first_b.pc.connectionState == "closed"  # b gave up its own offer
        assert a.pc.signalingState == b.pc.signalingState == "stable" and b.channel.label == "liaison"
        b.send("glare resolved")
        assert await a.receive() == "glare resolved"
    finally:
        for task in pumps:
            task.cancel()
        for mesh in meshes.values():
            await mesh.close()


@pytest.mark.parametrize("env", ["embedded"], indirect=True)
@pytest.mark.parametrize("route", ["asgi", "port"])
async def test_quiet_call_without_app_pings_outlives_the_idle_timeout(env, route):
    """Offer and answer done, nothing more said: protocol pings alone keep both sockets and the media."""
    port = {"signaling_port": free_port()} if route == "port" else {}
    quick = {"signaling_idle_timeout": 0.5, "signaling_ping_interval": 0.2, "signaling_ping_timeout": 0.5}
    async with live_world(env, **quick, **port) as (app, host, w):
        consult = await accepted_consult(app, w, CONSULT)
        async with (
            await client_for(w, consult, "a-clinician", keepalive=None) as a,
            await client_for(w, consult, "b-specialist", keepalive=None) as b,
        ):
            assert a.url.endswith(f":{port['signaling_port']}/api/v1/signaling") if port else True
            [la], [lb] = await a.wait_connected(1), await b.wait_connected(1)
            await asyncio.sleep(2.0)  # four idle timeouts
            assert not a.done.is_set() and not b.done.is_set() and a.resumes == b.resumes == 0
            assert la.pc.connectionState == lb.pc.connectionState == "connected"
            assert not [m for m in a.seen + b.seen if m["type"] in ("peer-left", "peer-state", "error")]
            await talk(a, b, "still here")
