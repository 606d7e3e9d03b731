"""A small Liaison call client on aiortc + websockets, for tests, benchmarks and integrators.

    async with CallClient(grant["signaling_url"], grant["token"]) as call:
        link = (await call.wait_connected())[0]
        link.send("hello")

Roles are fixed: a peer that joins calls (offers to) every peer already in the room; a peer that
is there first answers the offers of those who come later. A lost socket is resumed with the
session secret within the grace period; the RTCPeerConnections live on meanwhile, and what we
send in the gap goes out after the resume. Run `python -m signaling.peers.client --help` for the CLI.
"""

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections import deque
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, WebSocketException

from signaling.peers.webrtc import ColorTrack, Link, Mesh, frame_color, json_object

log = logging.getLogger("liaison.client")


class SignalingError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class CallClient:
    """One participant of a call, with one RTCPeerConnection per other peer (see signaling.peers.webrtc)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        video=ColorTrack,
        keepalive: float | None = 25.0,
        resume_window: float = 30.0,
        resume_delay: float = 0.0,
    ) -> None:
        self.url, self.token, self.keepalive = url, token, keepalive
        self.resume_window, self.resume_delay = resume_window, resume_delay
        self.mesh = Mesh(self._send, video=video)
        self.ws: ClientConnection | None = None
        self.peer_id = self.secret = self.room = None
        self.seen: list[dict] = []  # every message the server sent us, in order
        self.resumes = 0
        self.done = asyncio.Event()  # set once the call is over for us (left, or could not resume)
        self._outbox: list[str] = []
        self._pongs: deque[asyncio.Future] = deque()
        self._sending = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._closing = False

    @property
    def links(self) -> dict[str, Link]:
        return self.mesh.links

    async def __aenter__(self) -> "CallClient":
        await self.join()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.leave()

    async def join(self) -> dict:
        """Join with the call token, then call every peer already present."""
        joined = await self._open({"type": "join", "token": self.token})
        self.mesh.ice_servers, self.mesh.peer_id = joined["ice_servers"], joined["peer_id"]
        self._tasks = [
            asyncio.create_task(self._read(), name="call-reader"),
        ]
        if self.keepalive is not None:
            self._tasks.append(asyncio.create_task(self._keep_alive(), name="call-keepalive"))
        for peer in joined["peers"]:
            await self.mesh.offer(peer)
        return joined

    async def _open(self, first: dict) -> dict:
        ws = await websockets.connect(self.url, compression=None, open_timeout=10, max_size=2**20)
        try:
            await ws.send(json.dumps(first))
            answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if answer.get("type") != "joined":
                raise SignalingError(answer.get("code", "unexpected"), answer.get("message", str(answer)))
        except BaseException:
            await ws.close()
            raise
        self.ws, self.peer_id, self.secret, self.room = (
            ws,
            answer["peer_id"],
            answer["resume"],
            answer["room"],
        )
        self.seen.append(answer)
        return answer

    async def _read(self) -> None:
        try:
            while not self._closing:
                try:
                    msg = json.loads(await self._socket().recv())
                except ConnectionClosed:
                    # leave() may have set _closing during recv(); mypy keeps the loop's narrowing across awaits
                    if self._closing or not await self._resume():  # type: ignore[redundant-expr]
                        break
                    continue
                self.seen.append(msg)
                try:
                    await self._dispatch(msg)
                except Exception:
                    log.exception("could not act on a %s message", msg.get("type"))
        finally:
            self.done.set()

    async def _dispatch(self, msg: dict) -> None:
        kind = msg.get("type")
        if kind == "pong":
            while self._pongs:
                fut = self._pongs.popleft()
                if not fut.done():
                    fut.set_result(None)
                    break
        elif kind == "error":
            log.warning("signaling error %s: %s", msg.get("code"), msg.get("message"))
        else:
            await self.mesh.handle(msg)

    async def _resume(self) -> bool:
        """Reconnect with the session secret, keeping the peer id and the connections."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self.resume_window, 0.05
        await asyncio.sleep(self.resume_delay)  # a pause before the first attempt, if asked for
        while loop.time() < deadline and not self._closing:
            try:
                joined = await self._open({"type": "resume", "resume": self.secret})
            except SignalingError as exc:
                if exc.code == "resume_failed":
                    return False
            except (TimeoutError, OSError, WebSocketException):
                pass
            else:
                self.resumes += 1
                present = {p["peer_id"] for p in joined["peers"]}
                for peer_id in set(self.links) - present:  # peer-left is not kept for an absent peer
                    await self.mesh.drop(peer_id)
                await self._flush()
                return True
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        return False

    async def _send(self, msg: dict) -> None:
        """Send a signaling message; while the socket is down it waits for the resume."""
        self._outbox.append(json.dumps(msg))
        if len(self._outbox) == 1:
            await self._flush()

    async def _flush(self) -> None:
        async with self._sending:
            while self._outbox and self.ws is not None:
                try:
                    await self.ws.send(self._outbox[0])
                except ConnectionClosed:
                    return
                self._outbox.pop(0)

    async def _keep_alive(self) -> None:
        """An application ping now and then (optional: `keepalive=None` leaves liveness to the
        WebSocket's protocol pings, which `websockets` answers as browsers do)."""
        every = self.keepalive
        if every is None:
            return
        while True:
            await asyncio.sleep(every)
            await self._send({"type": "ping"})

    async def ping(self, timeout: float = 5.0) -> float:
        """Signaling round trip, in seconds."""
        loop = asyncio.get_running_loop()
        fut, start = loop.create_future(), loop.time()
        self._pongs.append(fut)
        await self._send({"type": "ping"})
        await asyncio.wait_for(fut, timeout)
        return loop.time() - start

    def cut(self) -> None:
        """Drop the socket abruptly, as a failing network would (no close handshake)."""
        self._socket().transport.abort()

    def _socket(self) -> ClientConnection:
        if self.ws is None:
            raise SignalingError("not_joined", "join first")
        return self.ws

    async def wait_connected(self, count: int = 1, timeout: float = 10.0) -> list[Link]:
        """Until at least `count` peer connections are `connected`; those links."""

        async def ready() -> list[Link]:
            while len(links := [k for k in self.links.values() if k.connected.is_set()]) < count:  # noqa: ASYNC110 -- links change state in aiortc callbacks, no one event to wait on
                await asyncio.sleep(0.02)
            return links

        return await asyncio.wait_for(ready(), timeout)

    async def leave(self) -> None:
        """Leave the room (the others hear peer-left) and close every connection."""
        if self._closing:
            return
        self._closing = True
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.send(json.dumps({"type": "leave"}))
                await asyncio.wait_for(self.ws.close(), 2)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.mesh.close()
        self.done.set()


async def fetch_grant(base_url: str, username: str, password: str, consult_id: str | None = None) -> dict:
    """Sign in and ask for a call token (for the consult, or for a pre-call check without one)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as http:
        login = await http.post("/api/v1/auth/login", json={"username": username, "password": password})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        path = f"/api/v1/consults/{consult_id}/call-token" if consult_id else "/api/v1/precall"
        resp = await http.post(path, headers=headers)
        resp.raise_for_status()
        return resp.json()


def complete(stats: dict) -> bool:
    """A report with both round trips (the media one needs a sender report and its reply)."""
    return stats.get("dc_rtt_ms") is not None and stats.get("rtt_ms") is not None


async def precall_check(
    grant: dict, *, seconds: float = 3.0, timeout: float = 20.0, color: tuple[int, int, int] = (200, 60, 180)
) -> dict:
    """Meet the server's echo peer: time to connect, whether our frames and messages come back,
    and its last report (rtt_ms, dc_rtt_ms, loss_up, loss_down, bitrate_up_kbps, ...)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with CallClient(grant["signaling_url"], grant["token"], video=lambda: ColorTrack(color)) as call:
        link = (await call.wait_connected(1, timeout))[0]
        connected_ms = round((loop.time() - start) * 1000, 1)
        await asyncio.wait_for(link.channel_open.wait(), timeout)
        link.send("echo-check")
        stats: dict[str, Any] = {}
        echoed, until, end = False, loop.time() + seconds, start + timeout
        while loop.time() < end and (loop.time() < until or not (echoed and link.frames and complete(stats))):
            with contextlib.suppress(asyncio.TimeoutError):
                data = await link.receive(0.25)
                msg = json_object(data)
                stats = msg if msg.get("type") == "stats" else stats
                echoed = echoed or data == "echo-check"
        color_back = frame_color(link.last_frame) if link.last_frame is not None else None
        own = color_back is not None and all(
            abs(a - b) <= 24 for a, b in zip(color_back, color, strict=False)
        )
        return {
            "connected_ms": connected_ms,
            "echoed_message": echoed,
            "frames_back": link.frames,
            "own_frames": own,
            **{k: v for k, v in stats.items() if k != "type"},
        }


async def _run(args: argparse.Namespace) -> dict:
    grant = (
        {"signaling_url": args.url, "token": args.token}
        if args.url
        else await fetch_grant(
            args.base, args.username, args.password, None if args.precall else args.consult
        )
    )
    if args.precall:
        return await precall_check(grant, seconds=args.seconds)
    video = None if args.no_video else ColorTrack
    async with CallClient(grant["signaling_url"], grant["token"], video=video) as call:
        print(json.dumps({"joined": call.room, "peer_id": call.peer_id}), flush=True)
        loop = asyncio.get_running_loop()
        end = loop.time() + args.seconds
        while loop.time() < end and not call.done.is_set():
            for link in call.links.values():
                if link.channel_open.is_set() and args.message:
                    link.send(args.message)
                while not link.inbox.empty():
                    print(
                        json.dumps({"from": link.peer_id, "message": str(link.inbox.get_nowait())}),
                        flush=True,
                    )
            await asyncio.sleep(1)
        return {
            "peers": {p: {"state": k.pc.connectionState, "frames": k.frames} for p, k in call.links.items()},
            "resumes": call.resumes,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m signaling.peers.client",
        description="Join a Liaison call (or a pre-call check) with aiortc.",
    )
    parser.add_argument("--url", help="signaling WebSocket URL (with --token)")
    parser.add_argument("--token", help="a call token from POST /api/v1/consults/{id}/call-token")
    parser.add_argument(
        "--base", help="Liaison base URL, to sign in and fetch a token, e.g. http://127.0.0.1:8000"
    )
    parser.add_argument("--username")
    parser.add_argument("--password", default=os.environ.get("LIAISON_PASSWORD"), help="or LIAISON_PASSWORD")
    parser.add_argument("--consult", help="consult id whose call to join")
    parser.add_argument("--precall", action="store_true", help="run a pre-call check against the echo peer")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to stay (default 10)")
    parser.add_argument("--message", help="send this on the data channel every second")
    parser.add_argument("--no-video", action="store_true", help="send no video track")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    signs_in = args.base and args.username and args.password and (args.consult or args.precall)
    if not (args.url and args.token) and not signs_in:
        parser.error("give --url and --token, or --base, --username, --password and --consult or --precall")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    print(json.dumps(asyncio.run(_run(args)), default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
