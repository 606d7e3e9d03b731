"""A real Chromium (Debian's, headless, fake camera) joins a consult call through the real server with
an aiortc peer, using only the browser's WebSocket and RTCPeerConnection (issue #12): video and the
data channel move both ways, the call outlives the idle timeout on protocol pings alone, and the
browser's candidates reach the other side with their `usernameFragment`.

Playwright drives the system browser (`executable_path`); no browser is ever downloaded. Everything
stays on 127.0.0.1: the page is served by this module, both peers offer host candidates on loopback
only, and no ICE server is named."""

import asyncio
import contextlib
import os
import shutil
from pathlib import Path

import aioice.ice
import pytest

from tests.conftest import IN_CI
from tests.live import accepted_consult, free_port, live_world
from tests.signaling.test_aiortc import CONSULT, client_for, until

CHROMIUM = os.environ.get("LIAISON_TEST_CHROMIUM", "/usr/bin/chromium")
PAGE = (Path(__file__).parent / "call_page.html").read_bytes()
ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # libwebrtc leaves loopback out of its networks unless told; the page keeps only those candidates
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
# The call is quiet for several idle timeouts; pings come often and may wait long for their pong,
# so a loaded machine delays the answer without losing the connection.
QUICK = {"signaling_idle_timeout": 0.5, "signaling_ping_interval": 0.3, "signaling_ping_timeout": 3.0}


def chromium_or_skip() -> str:
    if Path(CHROMIUM).is_file() or shutil.which(CHROMIUM):
        return CHROMIUM
    message = f"no Chromium at {CHROMIUM} (Debian package `chromium`)"
    if IN_CI:
        pytest.fail(f"{message}; under CI=true the browser test must run", pytrace=False)
    pytest.skip(message)


@contextlib.asynccontextmanager
async def page_server():
    """The page over plain HTTP on a free loopback port; yields its origin."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            head = f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(PAGE)}\r\n"
            writer.write(head.encode() + b"Connection: close\r\n\r\n" + PAGE)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def browser_page(origin: str):
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_or_skip(), headless=True, args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(origin + "/")
            yield page
        finally:
            await browser.close()


@pytest.fixture
def loopback_only(monkeypatch):
    """aiortc's host candidates on 127.0.0.1 alone, like the page's."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda **_: ["127.0.0.1"])


async def grant(w, consult, who: str) -> dict:
    resp = await w.client.post(f"/api/v1/consults/{consult['id']}/call-token", headers=await w.headers(who))
    assert resp.status_code == 200, resp.text
    return resp.json()


async def browser_joins(page, grant: dict) -> str:
    await page.evaluate("([url, token]) => call.start(url, token)", [grant["signaling_url"], grant["token"]])
    await page.wait_for_function("call.peerId !== null", timeout=10_000)
    return await page.evaluate("call.peerId")


async def exchange(page, link, peer_id: str, text: str) -> None:
    """One message each way on the data channel between the browser and the aiortc peer."""
    await asyncio.wait_for(link.channel_open.wait(), 10)
    await page.wait_for_function(f"call.open({peer_id!r})", timeout=10_000)
    await page.evaluate("([p, t]) => call.say(p, t)", [peer_id, f"{text} from chromium"])
    assert await link.receive(10) == f"{text} from chromium"
    link.send(f"{text} from aiortc")
    await page.wait_for_function(
        "t => call.received.some(m => m.data === t)", arg=f"{text} from aiortc", timeout=10_000
    )


@pytest.mark.parametrize("env", ["embedded"], indirect=True)
@pytest.mark.parametrize(
    "route, browser_offers",
    [("asgi", True), ("port", False)],
    ids=["asgi-browser-offers", "port-browser-answers"],
)
async def test_chromium_and_aiortc_call_through_liaison(env, route, browser_offers, loopback_only):
    chromium_or_skip()
    async with page_server() as origin, browser_page(origin) as page:
        port = {"signaling_port": free_port()} if route == "port" else {}
        async with live_world(env, allowed_origins=[origin], **QUICK, **port) as (app, host, w):
            consult = await accepted_consult(app, w, CONSULT)
            browser_grant = await grant(w, consult, "b-specialist")
            assert browser_grant["signaling_url"].endswith(
                f":{port['signaling_port']}/api/v1/signaling" if port else f"{host}/api/v1/signaling"
            )
            async with contextlib.AsyncExitStack() as stack:
                if browser_offers:  # aiortc is there first; the browser, the newcomer, calls it
                    a = await stack.enter_async_context(
                        await client_for(w, consult, "a-clinician", keepalive=None)
                    )
                    b = await browser_joins(page, browser_grant)
                else:
                    b = await browser_joins(page, browser_grant)
                    a = await stack.enter_async_context(
                        await client_for(w, consult, "a-clinician", keepalive=None)
                    )
                [link] = await a.wait_connected(1, timeout=20)
                assert link.peer_id == b
                await page.wait_for_function(f"call.state({a.peer_id!r}) === 'connected'", timeout=20_000)
                await exchange(page, link, a.peer_id, "hello")
                # video both ways: the browser's fake camera decoded here, aiortc's frames decoded there
                await until(lambda: link.frames >= 5, timeout=20)
                await page.wait_for_function(
                    "async p => (await call.inboundFrames(p)) >= 5", arg=a.peer_id, timeout=20_000
                )

                await asyncio.sleep(3.0)  # six idle timeouts of silence: protocol pings alone
                await exchange(page, link, a.peer_id, "still here")
                seen = await page.evaluate("call.seen")
                sent = await page.evaluate("call.sent")
                errors = await page.evaluate("call.errors")
                quiet = {"peer-left", "peer-state", "error", "socket-closed"}
                assert not [m for m in seen + a.seen if m["type"] in quiet], (seen, a.seen)
                assert not errors and "ping" not in {m["type"] for m in sent}
                assert await page.evaluate("call.ws.readyState") == 1 and not a.done.is_set()
                assert a.resumes == 0 and link.pc.connectionState == "connected"

                # the browser's candidates arrived as it made them: each names the ICE ufrag of its description
                description = next(m for m in a.seen if m["type"] in ("offer", "answer") and m["from"] == b)
                ufrag = next(x for x in description["sdp"].splitlines() if x.startswith("a=ice-ufrag:"))[12:]
                candidates = [m for m in a.seen if m["type"] == "candidate" and m["from"] == b]
                assert candidates and {m["usernameFragment"] for m in candidates} == {ufrag}
                assert all(" 127.0.0.1 " in m["candidate"] for m in candidates)
                assert {m["type"] for m in sent} == {
                    "join",
                    "offer" if browser_offers else "answer",
                    "candidate",
                }
