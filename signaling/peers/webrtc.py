"""The WebRTC side of a call, shared by the Python client (signaling.peers.client) and the server's
pre-call echo peer (signaling.peers.echo): one aiortc RTCPeerConnection per remote peer, driven by
signaling messages, with trickle ICE.

aiortc gathers every local candidate during setLocalDescription and writes them into the SDP; we
take them out again and send each as a `candidate` message, then an end-of-candidates marker
(an empty candidate), as browsers do. Remote candidates are added as they arrive.
"""

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp
from av import VideoFrame

log = logging.getLogger("liaison.webrtc")
Send = Callable[[dict], Awaitable[None]]


def rtc_configuration(ice_servers: list[dict] | None) -> RTCConfiguration:
    """Only the ICE servers Liaison names (none by default): never aiortc's public default STUN."""
    servers = [
        RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
        for s in ice_servers or []
    ]
    return RTCConfiguration(iceServers=servers)


def split_candidates(sdp: str) -> tuple[str, list[dict]]:
    """The SDP without its candidates, and one `candidate` message body per candidate followed by
    an end-of-candidates marker for each m-line, each with its m-line's ICE username fragment as
    browsers send it (session-level when the m-line names none)."""
    kept, found, mids, ufrags, index = [], [], {}, {}, -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            index += 1
        elif line.startswith("a=mid:"):
            mids[index] = line[6:]
        elif line.startswith("a=ice-ufrag:"):
            ufrags[index] = line[12:]
        if line.startswith("a=candidate:") and index >= 0:
            found.append((index, line[2:]))
        elif line != "a=end-of-candidates":
            kept.append(line)
    found += [(i, "") for i in range(index + 1)]
    bodies = [
        {
            "candidate": c,
            "sdpMid": mids.get(i),
            "sdpMLineIndex": i,
            "usernameFragment": ufrags.get(i, ufrags.get(-1)),
        }
        for i, c in found
    ]
    return "\r\n".join(kept) + "\r\n", bodies


def parse_candidate(msg: dict):
    """A `candidate` message as aiortc wants it; None for end-of-candidates."""
    line = msg.get("candidate") or ""
    if not line:
        return None
    candidate = candidate_from_sdp(line.removeprefix("candidate:"))
    candidate.sdpMid, candidate.sdpMLineIndex = msg.get("sdpMid"), msg.get("sdpMLineIndex")
    return candidate


class ColorTrack(VideoStreamTrack):
    """A synthetic 30 fps video track of one colour (Y, U, V), so a receiver can tell whose frames
    it got, with a striped band moving along its top edge: a still picture encodes to a few bytes a
    frame after the first, which would make any bitrate measured on it meaningless."""

    BAND = 8  # rows; the colour is read at the centre, well below

    def __init__(
        self, color: tuple[int, int, int] = (128, 128, 128), size: tuple[int, int] = (160, 120)
    ) -> None:
        super().__init__()
        self.color, self.size = color, size
        self._count = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=self.size[0], height=self.size[1])
        for plane, value in zip(frame.planes, self.color, strict=False):
            plane.update(bytes([value]) * plane.buffer_size)
        luma, self._count = frame.planes[0], self._count + 1
        band, stripes = bytearray(bytes(luma)), _stripes(self.size[0], self._count % 16)
        for row in range(self.BAND):
            band[row * luma.line_size : row * luma.line_size + self.size[0]] = stripes
        luma.update(bytes(band))
        frame.pts, frame.time_base = pts, time_base
        return frame


@functools.cache
def _stripes(width: int, shift: int) -> bytes:
    """One row of black and white stripes, 8 pixels each, moved `shift` pixels along."""
    return bytes(235 if (x + shift) % 16 < 8 else 16 for x in range(width))


def frame_color(frame: VideoFrame) -> tuple[int, int, int]:
    """The (Y, U, V) value at the centre of a yuv420p frame."""
    frame = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
    values = []
    for i, plane in enumerate(frame.planes):
        w, h = (frame.width, frame.height) if i == 0 else (frame.width // 2, frame.height // 2)
        values.append(bytes(plane)[(h // 2) * plane.line_size + w // 2])
    return values[0], values[1], values[2]


class Link:
    """One remote peer: its connection, data channel, received video and what came over the channel."""

    def __init__(self, peer_id: str, user_id: str | None, pc: RTCPeerConnection) -> None:
        self.peer_id, self.user_id, self.pc = peer_id, user_id, pc
        self.channel: RTCDataChannel | None = None
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.connected, self.channel_open = asyncio.Event(), asyncio.Event()
        self.frames = 0
        self.last_frame: VideoFrame | None = None
        self.pending: list[dict] = []  # candidates that came before the remote description
        self.tasks: list[asyncio.Task] = []

    def send(self, data: str | bytes) -> None:
        if self.channel is None:
            raise RuntimeError(f"no data channel to {self.peer_id} yet")
        self.channel.send(data)

    async def receive(self, timeout: float = 5.0) -> str | bytes:
        return await asyncio.wait_for(self.inbox.get(), timeout)


class Mesh:
    """Offers, answers and candidates in; RTCPeerConnections out. `send` delivers a signaling
    message; `video` makes the local track for each new connection (None: send no video);
    `on_track` / `on_channel` / `on_state` let a caller replace what happens to remote media,
    data channels and connection states (the echo peer sends them back)."""

    def __init__(
        self,
        send: Send,
        ice_servers: list[dict] | None = None,
        *,
        video: Callable[[], MediaStreamTrack] | None = ColorTrack,
        on_track=None,
        on_channel=None,
        on_state=None,
    ) -> None:
        self.send, self.ice_servers, self.video = send, ice_servers or [], video
        self.on_track = on_track or self._consume
        self.on_channel = on_channel or self._wire
        self.on_state = on_state or (lambda link, state: None)
        self.links: dict[str, Link] = {}
        self.users: dict[str, str] = {}  # peer id -> user id, from peer-joined
        self.peer_id: str | None = None  # ours, once joined

    def _link(self, peer_id: str, user_id: str | None = None) -> Link:
        if peer_id in self.links:
            return self.links[peer_id]
        link = self.links[peer_id] = Link(
            peer_id, user_id, RTCPeerConnection(rtc_configuration(self.ice_servers))
        )
        if self.video is not None:
            link.pc.addTrack(self.video())

        @link.pc.on("connectionstatechange")
        def _state() -> None:
            if link.pc.connectionState == "connected":
                link.connected.set()
            self.on_state(link, link.pc.connectionState)

        link.pc.on("track", lambda track: self.on_track(link, track))
        link.pc.on("datachannel", lambda channel: self.on_channel(link, channel))
        return link

    async def offer(self, peer: dict) -> Link:
        """Call a peer that was in the room before us: a data channel, our video, an offer."""
        link = self._link(peer["peer_id"], peer.get("user_id"))
        self.on_channel(link, link.pc.createDataChannel("liaison"))
        await link.pc.setLocalDescription(await link.pc.createOffer())
        await self._describe(link, "offer")
        return link

    async def handle(self, msg: dict) -> None:
        """Act on one signaling message from the server (others are ignored here)."""
        kind, sender = msg.get("type"), msg.get("from", "")
        if kind == "peer-joined":
            self.users[msg.get("peer_id", "")] = msg.get("user_id", "")
        elif kind == "offer":
            if self._glare(sender):
                return
            link = self._link(sender, self.users.get(sender))
            await link.pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "offer"))
            await self._flush(link)
            await link.pc.setLocalDescription(await link.pc.createAnswer())
            await self._describe(link, "answer")
        elif kind == "answer" and sender in self.links:
            await self.links[sender].pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
            await self._flush(self.links[sender])
        elif kind == "candidate" and sender in self.links and not self._glare(sender, drop=False):
            link = self.links[sender]
            link.pending.append(msg)
            if link.pc.remoteDescription is not None:
                await self._flush(link)
        elif kind == "peer-left":
            await self.drop(msg.get("peer_id"))

    def _glare(self, sender: str, drop: bool = True) -> bool:
        """Did we both call each other (two nodes, two joins at once)? The lower peer id's offer
        wins: True means ignore theirs (and their candidates); else ours is dropped."""
        link = self.links.get(sender)
        if link is None or link.pc.signalingState != "have-local-offer":
            return False
        if (self.peer_id or "") < sender or not drop:
            return True
        self.links.pop(sender)
        link.tasks.append(asyncio.create_task(link.pc.close()))
        return False

    async def _describe(self, link: Link, kind: str) -> None:
        sdp, candidates = split_candidates(link.pc.localDescription.sdp)
        await self.send({"type": kind, "to": link.peer_id, "sdp": sdp})
        for body in candidates:
            await self.send({"type": "candidate", "to": link.peer_id, **body})

    async def _flush(self, link: Link) -> None:
        pending, link.pending = link.pending, []
        for msg in pending:
            try:
                await link.pc.addIceCandidate(parse_candidate(msg))
            except (ValueError, AssertionError) as exc:
                log.info("ignored a bad candidate from %s: %s", link.peer_id, exc)

    def _consume(self, link: Link, track: MediaStreamTrack) -> None:
        async def frames() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    frame = await track.recv()
                    if track.kind == "video" and isinstance(frame, VideoFrame):
                        link.frames, link.last_frame = link.frames + 1, frame

        link.tasks.append(asyncio.create_task(frames()))

    def _wire(self, link: Link, channel: RTCDataChannel) -> None:
        """Our data channel: messages go to the inbox; a {"type": "ping"} is answered with a pong."""
        link.channel = channel
        if channel.readyState == "open":
            link.channel_open.set()
        channel.on("open", link.channel_open.set)

        @channel.on("message")
        def _message(data) -> None:
            ping = json_object(data)
            if ping.get("type") == "ping":
                channel.send(json.dumps({"type": "pong", "id": ping.get("id")}))
            else:
                link.inbox.put_nowait(data)

    async def drop(self, peer_id: str | None) -> None:
        link = self.links.pop(peer_id, None) if peer_id is not None else None
        if link is not None:
            for task in link.tasks:
                task.cancel()
            await link.pc.close()

    async def close(self) -> None:
        for peer_id in list(self.links):
            await self.drop(peer_id)


def json_object(data) -> dict:
    if not isinstance(data, str) or not data.startswith("{"):
        return {}
    with contextlib.suppress(ValueError):
        value = json.loads(data)
        return value if isinstance(value, dict) else {}
    return {}
