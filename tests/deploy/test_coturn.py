"""coturn (Debian) with the shipped deploy/turnserver.conf on TLS: a call token's credentials get an
allocation over `turns:`, and an aiortc call forced through the relay connects.

Only what a loopback-only test needs is added on the command line: addresses and free ports, the
test certificate, and loopback peers allowed (the shipped file refuses them, rightly, in service)."""

import asyncio
import random
import ssl
import subprocess
from contextlib import asynccontextmanager

import pytest
from aioice.turn import create_turn_endpoint
from aiortc import RTCPeerConnection
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from signaling.peers.webrtc import rtc_configuration
from tests.consults.conftest import CONSULT
from tests.deploy.conftest import DEPLOY, program, until_listening
from tests.live import accepted_consult, free_port

SECRET = "turn-test-secret-" + "t" * 20
TLS_PORT = free_port()


@pytest.fixture
def settings_overrides():
    return {"turn_secret": SECRET, "turn_urls": [f"turns:127.0.0.1:{TLS_PORT}?transport=tcp"]}


@pytest.fixture(scope="module")
async def coturn(certs, tmp_path_factory):
    binary = program("/usr/bin/turnserver", "coturn")
    work = tmp_path_factory.mktemp("coturn")
    low = random.randrange(20000, 60000, 100)  # relay ports: a block of its own, unlikely to be taken
    args = [binary, "-c", str(DEPLOY / "turnserver.conf"), "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"]
    args += [f"--listening-port={free_port()}", f"--tls-listening-port={TLS_PORT}"]
    args += [f"--min-port={low}", f"--max-port={low + 60}", f"--static-auth-secret={SECRET}"]
    args += [f"--cert={certs / 'server.crt'}", f"--pkey={certs / 'server.key'}"]
    args += [
        "--allow-loopback-peers",
        "--allowed-peer-ip=127.0.0.1",
        f"--pidfile={work}/pid",
        f"--db={work}/db",
    ]
    async with running(args, work) as proc:
        yield proc


def start(args: list[str], work) -> subprocess.Popen:
    """The server in the foreground, its log in work/log (the child keeps its own copy of the file)."""
    with open(work / "log", "wb") as log:
        return subprocess.Popen(args, cwd=work, stdout=log, stderr=subprocess.STDOUT)


@asynccontextmanager
async def running(args: list[str], work):
    proc = start(args, work)
    try:
        await until_listening(TLS_PORT, proc, lambda: (work / "log").read_text()[-3000:])
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
async def grant(coturn, app, world):
    consult = await accepted_consult(app, world, CONSULT)
    resp = await world.client.post(
        f"/api/v1/consults/{consult['id']}/call-token", headers=await world.headers("a-clinician")
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


class Sink(asyncio.DatagramProtocol):
    pass


@pytest.mark.parametrize("env", ["embedded"], indirect=True)
async def test_a_call_tokens_credentials_get_an_allocation_over_turns(grant, certs):
    [server] = grant["ice_servers"]
    assert server["urls"] == [f"turns:127.0.0.1:{TLS_PORT}?transport=tcp"]
    tls = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    transport, _ = await create_turn_endpoint(
        Sink, ("127.0.0.1", TLS_PORT), server["username"], server["credential"], ssl=tls, transport="tcp"
    )
    try:
        relayed = transport.get_extra_info("sockname")
        assert relayed[0] == "127.0.0.1" and relayed[1] > 0
    finally:
        transport.close()
    with pytest.raises(Exception, match="401"):  # a credential not signed with the secret is refused
        await create_turn_endpoint(
            Sink, ("127.0.0.1", TLS_PORT), server["username"], "d3Jvbmc=", ssl=tls, transport="tcp"
        )


@pytest.mark.parametrize("env", ["embedded"], indirect=True)
async def test_an_aiortc_call_forced_through_the_relay_connects(grant, certs, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(certs / "ca.crt"))  # aiortc's turns: uses the default context
    config = rtc_configuration(grant["ice_servers"])
    config.iceTransportPolicy = RTCIceTransportPolicy.RELAY
    caller, callee = RTCPeerConnection(config), RTCPeerConnection(config)
    try:
        channel = caller.createDataChannel("chat")
        got: asyncio.Queue[str] = asyncio.Queue()
        callee.on("datachannel", lambda ch: ch.on("message", got.put_nowait))
        opened = asyncio.Event()
        channel.on("open", opened.set)
        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        for pc in (caller, callee):
            sdp = pc.localDescription.sdp
            kinds = {line.split()[7] for line in sdp.splitlines() if line.startswith("a=candidate:")}
            assert kinds == {"relay"}, sdp
        await asyncio.wait_for(opened.wait(), 30)
        channel.send("relayed")
        assert await asyncio.wait_for(got.get(), 10) == "relayed"
        assert caller.connectionState == "connected"
    finally:
        await caller.close()
        await callee.close()
