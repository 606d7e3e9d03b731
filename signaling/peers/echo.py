"""The pre-call echo: a server-side aiortc peer in an echo room, joined inside the server process.

It answers the client's offer, sends the client's own video back (through a MediaRelay), echoes
data-channel messages, and every second sends on the data channel a `ping` (which the client
answers with a `pong`, giving the data-channel round trip) and a report:

    {"type": "stats", "rtt_ms", "loss_down", "loss_up", "packets_received",
     "bitrate_up_kbps", "bitrate_down_kbps", "dc_rtt_ms"}

rtt_ms and loss_down come from the client's RTCP receiver reports on the echoed video (null
until the first ones arrive); loss_up and packets_received from the video we receive; up is
client to server, down server to client. The echo has no user in the database, so no call is
recorded for its room.
"""

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiortc import MediaStreamTrack, RTCDataChannel
from aiortc.contrib.media import MediaRelay

from signaling.calls.ice import ice_servers
from signaling.peers.webrtc import Link, Mesh, json_object

log = logging.getLogger("liaison.precall")
ECHO_USER = "precall-echo"


class LocalSocket:
    """What the signaling server sends to the echo peer, queued in place of a WebSocket."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()

    async def send_text(self, text: str) -> None:
        self.inbox.put_nowait(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.inbox.put_nowait(None)


class EchoPeer:
    """One echo room's server-side peer; `run` returns once the check is over, all closed."""

    def __init__(self, server, room: str, *, timeout: float = 60.0) -> None:
        self.server, self.room, self.timeout = server, room, timeout
        self.socket, self.relay = LocalSocket(), MediaRelay()
        self.mesh: Mesh | None = None
        self.feed: Callable[[str], Awaitable[None]] | None = None
        self.dc_rtt_ms: float | None = None
        self._probes: dict[int, float] = {}
        self._counters: dict[str, tuple[int, int, float]] = {}

    async def attach(self) -> None:
        """Join the room (before the client, who will then call us)."""
        peer, self.feed = await self.server.attach_local(
            self.room, self.socket, user_id=ECHO_USER, role="echo", name="Pre-call check"
        )
        servers = ice_servers(self.server.s, ECHO_USER, int(time.time()))
        self.mesh = Mesh(
            self._send,
            servers,
            video=None,
            on_track=self._track,
            on_channel=self._channel,
            on_state=self._state,
        )
        self.mesh.peer_id = peer.peer_id

    async def run(self) -> None:
        """Until the client leaves, its connection fails, the server closes us or time is up."""
        mesh, feed = self._attached()
        reporter = asyncio.create_task(self._report(), name=f"echo-report-{self.room}")
        try:
            async with asyncio.timeout(self.timeout):
                while (raw := await self.socket.inbox.get()) is not None:
                    msg = json.loads(raw)
                    await mesh.handle(msg)
                    if msg.get("type") == "peer-left" and not mesh.links:
                        break
        except TimeoutError:
            log.info("pre-call check %s ended after %ss", self.room, self.timeout)
        except Exception:
            log.exception("pre-call check %s failed", self.room)
        finally:
            reporter.cancel()
            await mesh.close()
            await feed(json.dumps({"type": "leave"}))

    def _attached(self) -> tuple[Mesh, Callable[[str], Awaitable[None]]]:
        if self.mesh is None or self.feed is None:
            raise RuntimeError("attach() the echo peer first")
        return self.mesh, self.feed

    async def _send(self, msg: dict) -> None:
        await self._attached()[1](json.dumps(msg))

    def _track(self, link: Link, track: MediaStreamTrack) -> None:
        link.pc.addTrack(self.relay.subscribe(track))

    def _channel(self, link: Link, channel: RTCDataChannel) -> None:
        link.channel = channel

        @channel.on("message")
        def _message(data) -> None:
            msg = json_object(data)
            if msg.get("type") == "pong" and msg.get("id") in self._probes:
                self.dc_rtt_ms = round((time.monotonic() - self._probes.pop(msg["id"])) * 1000, 2)
            elif msg.get("type") == "ping":
                channel.send(json.dumps({"type": "pong", "id": msg.get("id")}))
            else:
                channel.send(data)

    def _state(self, link: Link, state: str) -> None:
        if state == "failed":
            self.socket.inbox.put_nowait(None)

    async def _report(self) -> None:
        probe = 0
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            self._probes = {k: t for k, t in self._probes.items() if now - t < 10}
            for link in list(self._attached()[0].links.values()):
                if link.channel is None or link.channel.readyState != "open":
                    continue
                probe += 1
                self._probes[probe] = time.monotonic()
                link.channel.send(json.dumps({"type": "ping", "id": probe}))
                link.channel.send(json.dumps(self._summary(link.peer_id, await link.pc.getStats(), now)))

    def _summary(self, peer_id: str, report, now: float) -> dict:
        stats = list(report.values())
        remote = [s for s in stats if s.type == "remote-inbound-rtp"]
        inbound = [s for s in stats if s.type == "inbound-rtp"]
        transports = {s.id: s for s in stats if s.type == "transport"}.values()
        received, lost = sum(s.packetsReceived for s in inbound), sum(max(0, s.packetsLost) for s in inbound)
        rtts = [s.roundTripTime for s in remote if s.roundTripTime is not None]
        bytes_in, bytes_out = sum(t.bytesReceived for t in transports), sum(t.bytesSent for t in transports)
        last_in, last_out, then = self._counters.get(peer_id, (0, 0, now - 1.0))
        self._counters[peer_id] = (bytes_in, bytes_out, now)
        span = max(now - then, 1e-3)
        return {
            "type": "stats",
            "rtt_ms": round(max(rtts) * 1000, 2) if rtts else None,
            "loss_down": round(max(s.fractionLost for s in remote) / 256, 4) if remote else None,
            "loss_up": round(lost / (received + lost), 4) if received + lost else None,
            "packets_received": received,
            "bitrate_up_kbps": round((bytes_in - last_in) * 8 / span / 1000, 1),
            "bitrate_down_kbps": round((bytes_out - last_out) * 8 / span / 1000, 1),
            "dc_rtt_ms": self.dc_rtt_ms,
        }
