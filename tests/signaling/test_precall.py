"""Pre-call check: a real aiortc client meets the server's echo peer through the real server."""

import asyncio
import json
import os
import subprocess
import sys

import pytest

from signaling.peers.client import CallClient, precall_check
from tests.conftest import PASSWORD, make_settings, reset_env, seed_world
from tests.live import http, serve

# Media takes the same path whatever the database: the main check runs in both configurations (the
# echo peer then joins through the Redis fabric), the others once.
both = pytest.mark.parametrize("env", ["embedded", "scaled"], indirect=True)
embedded = pytest.mark.parametrize("env", ["embedded"], indirect=True)


@pytest.fixture
async def live(env):
    await reset_env(env)
    async with (
        serve(make_settings(env["database_url"], env["redis_url"])) as (app, host),
        http(host) as client,
    ):
        yield app, host, await seed_world(app, client)


async def precall(w, who="a-clinician") -> dict:
    resp = await w.client.post("/api/v1/precall", headers=await w.headers(who))
    assert resp.status_code == 200, resp.text
    return resp.json()


async def gone(app, room: str, timeout: float = 5.0) -> None:
    async def check():
        while room in app.state.precall.expected or app.state.signaling.rooms.peers(room):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(check(), timeout)


@both
async def test_echo_returns_own_frames_and_reports(live):
    app, host, w = live
    grant = await precall(w)
    assert grant["room"].startswith("precall-") and grant["ice_servers"] == []
    assert grant["signaling_url"] == f"ws://{host}/api/v1/signaling"
    [echo] = app.state.signaling.rooms.peers(grant["room"])  # waiting for the client before it joins
    assert echo.user_id == "precall-echo"
    report = await asyncio.wait_for(precall_check(grant, seconds=2.5, color=(210, 50, 170)), 30)
    assert report["echoed_message"] is True
    assert report["own_frames"] is True and report["frames_back"] >= 10, report
    assert 0 < report["dc_rtt_ms"] < 1000, report
    assert report["rtt_ms"] is not None and 0 <= report["rtt_ms"] < 1000, report
    assert report["loss_up"] == 0 and report["loss_down"] == 0, report
    assert report["bitrate_up_kbps"] > 10 and report["bitrate_down_kbps"] > 10, report
    assert report["packets_received"] > 10
    await gone(app, grant["room"])  # the echo leaves with its client and closes its connection


@embedded
async def test_echo_sends_back_another_clients_colour_not_ours(live):
    """Two checks at once: each client gets its own frames, not the other's."""
    app, host, w = live
    g1, g2 = await precall(w, "a-clinician"), await precall(w, "b-specialist")
    r1, r2 = await asyncio.wait_for(
        asyncio.gather(
            precall_check(g1, seconds=1, color=(220, 40, 200)),
            precall_check(g2, seconds=1, color=(60, 200, 40)),
        ),
        30,
    )
    assert r1["own_frames"] and r2["own_frames"], (r1, r2)


@embedded
async def test_unused_echo_room_closes_after_timeout(live):
    app, host, w = live
    app.state.precall.timeout = 0.5
    grant = await precall(w)
    assert grant["room"] in app.state.precall.expected
    await gone(app, grant["room"])
    async with CallClient(grant["signaling_url"], grant["token"]) as late:  # the echo is gone: nobody to call
        assert late.links == {} and late.seen[0]["peers"] == []


@embedded
async def test_too_many_checks_at_once(live):
    app, host, w = live
    app.state.precall.max_rooms = 1
    await precall(w)
    resp = await w.client.post("/api/v1/precall", headers=await w.headers("a-clinician"))
    assert resp.status_code == 429 and resp.json()["code"] == "rate_limited"
    assert "Retry-After" in resp.headers
    app.state.precall.max_rooms = 16
    rooms = [(await precall(w, "b-specialist"))["room"] for _ in range(3)]
    await gone(app, rooms[0])  # at most two per user: the third ended the first
    assert set(rooms[1:]) <= app.state.precall.expected


@embedded
async def test_shutdown_closes_running_checks(env):
    await reset_env(env)
    async with (
        serve(make_settings(env["database_url"], env["redis_url"])) as (app, host),
        http(host) as client,
    ):
        w = await seed_world(app, client)
        grant = await precall(w)
        call = CallClient(grant["signaling_url"], grant["token"], resume_window=1.0)
        await call.join()
        await call.wait_connected(1, 10)
        [(echo, task)] = app.state.precall.echoes.values()
        pcs = [link.pc for link in echo.mesh.links.values()]
    assert task.done() and app.state.precall.echoes == {}
    assert [pc.connectionState for pc in pcs] == ["closed"]
    await asyncio.wait_for(call.done.wait(), 5)  # the client could not resume against a stopped server
    await call.leave()


@embedded
async def test_command_line_precall(live):
    app, host, w = live
    cmd = [
        sys.executable,
        "-m",
        "signaling.peers.client",
        "--base",
        f"http://{host}",
        "--username",
        "b-specialist",
        "--precall",
        "--seconds",
        "1",
    ]
    done = await asyncio.to_thread(
        subprocess.run,
        cmd,
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ | {"LIAISON_PASSWORD": PASSWORD},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["own_frames"] and report["echoed_message"] and report["dc_rtt_ms"] > 0, report


@both
async def test_the_echo_peer_and_the_user_are_described_by_their_precall_roles(live):
    """joined lists the echo as `echo`; the echo's side hears the user come as `precall`."""
    import websockets

    app, host, w = live
    grant = await precall(w)
    [echo] = app.state.signaling.rooms.peers(grant["room"])
    async with websockets.connect(grant["signaling_url"], compression=None) as ws:
        await ws.send(json.dumps({"type": "join", "token": grant["token"]}))
        joined = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert joined["peers"] == [
            {
                "peer_id": echo.peer_id,
                "user_id": "precall-echo",
                "role": "echo",
                "name": "Pre-call check",
                "state": "connected",
            }
        ]
        [me] = [p for p in app.state.signaling.rooms.peers(grant["room"]) if p is not echo]
        assert me.public() == {
            "peer_id": joined["peer_id"],
            "user_id": str(w.users["a-clinician"]),
            "role": "precall",
            "name": "a-clinician",
        }
        await ws.send(json.dumps({"type": "leave"}))
    await gone(app, grant["room"])
