"""Signaling relay: Liaison's WebSocket signaling against a bare `websockets` relay (bench.bare_relay),
each in a process of its own on 127.0.0.1, in the same run. Liaison is measured on its own signaling
port (signaling/edge/listener.py: `websockets` inside the `liaison serve` process) and, for comparison, on
the API's ASGI route under uvicorn.

- Throughput and server CPU: two joined peers; one sends ICE-candidate-sized messages to the other,
  keeping a bounded window (WINDOW) in flight, so the figure is relaying, not buffering. Server CPU
  is utime+stime from /proc/<pid>/stat over the timed span, divided by the messages relayed.
  ROUNDS short rounds, servers interleaved, medians quoted.
- Latency: the sender paces messages at a steady rate, each carrying its send time (in the
  candidate's foundation, which Liaison relays untouched); the receiver subtracts.
- Call setup: two aiortc peers (a data channel, non-trickle ICE, no ICE servers) from opening the
  sockets and joining until both report `connected`; Liaison with real call tokens for an accepted
  consult (each join admitted by the ledger in Redis; attendance written to PostgreSQL after
  signaling_record_delay, and the next call waits for it), the bare relay with names. CALLS
  rounds, the two servers taking turns to go first.
- Idle connections: IDLE joined connections (calls of two: rooms of two peers, tokens minted with
  signaling.calls.tokens.issue for rooms without a consult), each server's RSS delta / IDLE, and the
  rate they were opened and joined at (CONCURRENCY at once).

The clients here are a minimal hand-written WebSocket client (`Link`, a protocol, no task per
connection) so that this process stays cheaper than the servers it measures.
"""

import asyncio
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from base64 import b64encode
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from api.settings import Settings
from bench.common import BODY, PASSWORD, node_settings, percentiles, scratch_database, seed
from bench.nodes import Node, free_port

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

ROOT = Path(__file__).resolve().parent.parent
PATH = "/api/v1/signaling"
CANDIDATE = (
    "candidate:{} 1 udp 1677729535 192.0.2.2 46154 typ srflx raddr 10.0.0.1 rport 46154 generation 0 "
    "ufrag sXxX network-cost 999"
)
ROUNDS, ROUND_S, WARM_S, WINDOW = 5, 1.0, 0.25, 64
RATES, LATENCY_S, SKIP = (1000, 5000), 2.0, 0.1
CALLS = 60
SETTLE = (
    Settings.model_fields["signaling_record_delay"].default + 0.3
)  # a call's attendance is written by then
IDLE, CONCURRENCY = 5000, 64
CLK = os.sysconf("SC_CLK_TCK")


# --- a minimal WebSocket client ------------------------------------------------------------------


def frame(payload: bytes, opcode: int = 1) -> bytes:
    """One masked client frame."""
    n, key = len(payload), os.urandom(4)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + key + apply_mask(payload, key)


def text(message: dict) -> bytes:
    return frame(json.dumps(message).encode())


class Link(asyncio.Protocol):
    """One client connection: the handshake, then text frames either queued (for `recv`) or handed
    in batches to `on_frames` (the load phases)."""

    def __init__(self, host: str) -> None:
        key = b64encode(os.urandom(16)).decode()
        self.request = (
            f"GET {PATH} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        self.open, self.closed = loop.create_future(), loop.create_future()
        self.buf = bytearray()
        self.inbox: deque[bytes] = deque()
        self.waiter: asyncio.Future | None = None
        self.on_frames: Callable[[list[bytes]], None] | None = None
        self.transport: asyncio.Transport | None = None
        self.close_frame = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc) -> None:
        gone = ConnectionError(
            f"closed ({exc or 'by the server'}; close frame {self.close_frame[:2].hex()} "
            f"{self.close_frame[2:].decode(errors='replace')!r})"
        )
        if not self.open.done():
            self.open.set_exception(gone)
        if not self.closed.done():
            self.closed.set_result(None)
        if self.waiter and not self.waiter.done():
            self.waiter.set_exception(gone)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.open.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.open.set_exception(ConnectionError(bytes(buf[:end]).decode(errors="replace")))
                self.transport.close()
                return
            del buf[: end + 4]
            self.open.set_result(None)
        texts, pos, n = [], 0, len(buf)
        while n - pos >= 2:
            size, head = buf[pos + 1] & 0x7F, 2
            if size == 126:
                if n - pos < 4:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif size == 127:
                if n - pos < 10:
                    break
                size, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            end = pos + head + size
            if end > n:
                break
            op = buf[pos] & 0x0F
            if op == 1:
                texts.append(bytes(buf[pos + head : end]))
            elif op == 9:
                self.transport.write(frame(bytes(buf[pos + head : end]), 0xA))
            elif op == 8:
                self.close_frame = bytes(buf[pos + head : end])
                self.transport.close()
            pos = end
        if pos:
            del buf[:pos]
        if texts:
            if self.on_frames is not None:
                self.on_frames(texts)
            else:
                self.inbox.extend(texts)
                if self.waiter and not self.waiter.done():
                    self.waiter.set_result(None)

    def send(self, message: dict) -> None:
        self.transport.write(text(message))

    async def recv(self, timeout: float = 10.0) -> dict:
        while not self.inbox:
            self.waiter = asyncio.get_running_loop().create_future()
            await asyncio.wait_for(self.waiter, timeout)
        return json.loads(self.inbox.popleft())

    async def recv_type(self, kind: str, timeout: float = 10.0) -> dict:
        while True:
            msg = await self.recv(timeout)
            if msg.get("type") == kind:
                return msg
            if msg.get("type") == "error":
                raise RuntimeError(f"signaling error: {msg}")

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


async def connect(host: str) -> Link:
    ip, port = host.split(":")
    _, link = await asyncio.get_running_loop().create_connection(lambda: Link(host), ip, int(port))
    await asyncio.wait_for(link.open, 10)
    return link


async def join(host: str, hello: dict) -> tuple[Link, dict]:
    link = await connect(host)
    try:
        link.send(hello)
        return link, await link.recv_type("joined")
    except BaseException:
        link.close()
        raise


# --- the servers ---------------------------------------------------------------------------------


@dataclass
class Target:
    label: str
    host: str
    proc: subprocess.Popen
    hello: Callable[[str, int], dict]  # (room, index) -> the join message
    api: str = ""  # where its HTTP API answers (Liaison only)
    stderr: deque = field(default_factory=lambda: deque(maxlen=50))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def drain(self) -> "Target":
        """Read the server's stderr as it comes (its log would otherwise fill the pipe and stall it)."""

        def pump() -> None:
            for line in iter(self.proc.stderr.readline, b""):
                self.stderr.append(line)

        threading.Thread(target=pump, daemon=True).start()
        return self


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def fd_limit(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        return next(int(line.split()[3]) for line in f if line.startswith("Max open files"))


async def start_bare() -> Target:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bare_relay", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    for _ in range(300):
        with contextlib.suppress(OSError):
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"bare relay did not start: {proc.stderr.read(4000)!r}")
    return Target(
        "bare websockets relay",
        f"127.0.0.1:{port}",
        proc,
        lambda room, i: {"type": "join", "id": f"{room}-{i}"},
    ).drain()


async def start_liaison(
    settings: Settings, mint: Callable[[str], str], *, dedicated: bool
) -> tuple[Node, Target]:
    """`liaison serve` as production runs it: signaling on its own port (dedicated), or on the API's
    ASGI route under uvicorn."""
    port = free_port() if dedicated else None
    node = await Node(settings.model_copy(update={"signaling_port": port}), workers=1).start()
    label = "Liaison (own signaling port)" if dedicated else "Liaison (ASGI route, uvicorn)"
    host = f"127.0.0.1:{port}" if dedicated else node.host
    return node, Target(
        label, host, node.proc, lambda room, i: {"type": "join", "token": mint(room)}, api=node.host
    ).drain()


# --- the measurements ----------------------------------------------------------------------------


async def pair(t: Target) -> tuple[Link, Link, str]:
    room = f"bench-{uuid.uuid4().hex[:8]}"
    a, _ = await join(t.host, t.hello(room, 0))
    b, jb = await join(t.host, t.hello(room, 1))
    await asyncio.sleep(0.05)
    a.inbox.clear()  # peer-joined
    return a, b, jb["peer_id"]


def candidate(to: str, stamp: int) -> dict:
    return {
        "type": "candidate",
        "to": to,
        "candidate": CANDIDATE.format(stamp),
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }


async def throughput_round(t: Target, link: tuple[Link, Link, str]) -> tuple[float, float, float]:
    """(messages/s, server CPU µs per message, this process's CPU µs per message) for one round."""
    a, b, to = link
    one = text(candidate(to, 842163049))
    state = {"got": 0, "sent": WINDOW, "run": True}

    def arrived(texts: list[bytes]) -> None:
        n = len(texts)
        state["got"] += n
        if state["run"]:
            state["sent"] += n
            a.transport.write(one * n)

    b.on_frames = arrived
    a.transport.write(one * WINDOW)
    await asyncio.sleep(WARM_S)
    n0, c0, p0, t0 = state["got"], cpu_seconds(t.pid), time.process_time(), time.perf_counter()
    await asyncio.sleep(ROUND_S)
    n1, c1, p1, t1 = state["got"], cpu_seconds(t.pid), time.process_time(), time.perf_counter()
    state["run"] = False
    for _ in range(200):
        if state["got"] >= state["sent"]:
            break
        await asyncio.sleep(0.01)
    b.on_frames = None
    if a.inbox or state["got"] < state["sent"]:
        raise AssertionError(
            f"{t.label}: {state['sent'] - state['got']} lost; sender got {list(a.inbox)[:2]}"
        )
    n = max(1, n1 - n0)
    return n / (t1 - t0), (c1 - c0) / n * 1e6, (p1 - p0) / n * 1e6


async def latency_run(link: tuple[Link, Link, str], rate: int) -> tuple[list[float], int]:
    """Latencies (ms) of messages sent at a steady `rate`, the first SKIP of them left out; and the lost."""
    a, b, to = link
    total, got = int(rate * LATENCY_S), []

    def arrived(texts: list[bytes]) -> None:
        now = time.perf_counter_ns()
        for p in texts:
            i = p.find(b"candidate:") + 10
            got.append((now - int(p[i : p.find(b" ", i)])) / 1e6)

    b.on_frames = arrived
    start, sent = time.perf_counter(), 0
    while sent < total:
        await asyncio.sleep(0.0005)
        due = min(total, int((time.perf_counter() - start) * rate))
        if due > sent:
            a.transport.write(
                b"".join(text(candidate(to, time.perf_counter_ns())) for _ in range(due - sent))
            )
            sent = due
    for _ in range(200):
        if len(got) >= total:
            break
        await asyncio.sleep(0.01)
    b.on_frames = None
    return got[int(total * SKIP) :], total - len(got)


async def call_once(t: Target, hello_a: dict, hello_b: dict) -> tuple[float, float]:
    """Seconds from opening the first socket until both peers have joined, and until both aiortc
    peers are connected."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    loop = asyncio.get_running_loop()
    pa, pb = (RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2))
    up = {pc: loop.create_future() for pc in (pa, pb)}
    for pc in (pa, pb):
        pc.on(
            "connectionstatechange",
            lambda pc=pc: pc.connectionState == "connected" and not up[pc].done() and up[pc].set_result(None),
        )
    a = b = None
    try:
        t0 = time.perf_counter()
        a, ja = await join(t.host, hello_a)
        b, jb = await join(t.host, hello_b)
        a_id, b_id, joined = ja["peer_id"], jb["peer_id"], time.perf_counter() - t0
        pb.createDataChannel("bench")
        await pb.setLocalDescription(await pb.createOffer())
        b.send({"type": "offer", "to": a_id, "from": b_id, "sdp": pb.localDescription.sdp})
        offer = await a.recv_type("offer")
        await pa.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await pa.setLocalDescription(await pa.createAnswer())
        a.send({"type": "answer", "to": offer["from"], "from": ja["peer_id"], "sdp": pa.localDescription.sdp})
        answer = await b.recv_type("answer")
        await pb.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        await asyncio.wait_for(asyncio.gather(*up.values()), 10)
        return joined, time.perf_counter() - t0
    finally:
        await pa.close()
        await pb.close()
        for link in (a, b):
            if link is not None:
                with contextlib.suppress(Exception):
                    link.send({"type": "leave"})
                link.close()


async def idle_connections(t: Target) -> tuple[float, float, float, list[str]]:
    """(KiB of server RSS per idle joined connection, connections opened and joined per second,
    server CPU ms per connection opened and joined, the errors of joins that failed)."""
    tag = uuid.uuid4().hex[:8]
    hellos = [t.hello(f"idle-{tag}-{i // 2}", i % 2) for i in range(IDLE)]  # calls of two
    links: list[Link] = []
    failed: list[str] = []
    await asyncio.sleep(0.3)
    before = rss_kib(t.pid)

    async def opener(indices: range) -> None:
        for i in indices:
            try:
                link, _ = await join(t.host, hellos[i])
            except (TimeoutError, OSError, RuntimeError) as exc:  # counted and reported, not hidden
                failed.append(f"{type(exc).__name__}: {exc}")
                continue
            link.on_frames = lambda texts: None  # peer-joined, and nothing else
            links.append(link)

    t0, c0 = time.perf_counter(), cpu_seconds(t.pid)
    try:
        await asyncio.gather(*(opener(range(w, IDLE, CONCURRENCY)) for w in range(CONCURRENCY)))
        n = max(1, len(links))
        rate, cpu = n / (time.perf_counter() - t0), (cpu_seconds(t.pid) - c0) / n * 1000
        await asyncio.sleep(0.5)
        per = (rss_kib(t.pid) - before) / n
    finally:
        for link in links:
            link.close()
        await asyncio.sleep(0.5)
    return per, rate, cpu, failed


# --- the run -------------------------------------------------------------------------------------


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


async def run() -> list[tuple[str, str, str, str]]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # the servers inherit it
    async with scratch_database() as url:
        users = await seed(url, specialists=1)
        settings = node_settings(
            url,
            escalation_worker=False,
            signaling_rate_per_second=1e9,
            signaling_rate_burst=1_000_000_000,
            signaling_connections_per_user=1_000_000,
            signaling_idle_timeout=3600,
            signaling_join_timeout=60,
        )
        from auth.context import build_auth_context
        from signaling.calls import tokens

        ctx, org, user = build_auth_context(settings, None), uuid.uuid4(), uuid.uuid4()

        def mint(room: str) -> str:
            return tokens.issue(ctx, user_id=user, org_id=org, room=room, consult_id=None)[0]

        started = await asyncio.gather(
            start_bare(),
            start_liaison(settings, mint, dedicated=True),
            start_liaison(settings, mint, dedicated=False),
            return_exceptions=True,
        )
        try:
            failed = [s for s in started if isinstance(s, BaseException)]
            if failed:
                raise failed[0]
            bare, (_, liaison), *others = started
            return await _measure(bare, liaison, [t for _, t in others], users)
        finally:
            for s in started:
                if isinstance(s, Target):
                    s.proc.terminate()
                    with contextlib.suppress(Exception):
                        s.proc.wait(10)
                elif isinstance(s, tuple):
                    s[0].stop()


async def _measure(bare: Target, liaison: Target, others: list[Target], users: dict) -> list:
    rows = []
    everyone = [bare, liaison, *others]
    links = {t.label: await pair(t) for t in everyone}

    # Throughput and CPU: rounds interleaved across servers.
    tput: dict[str, list[tuple[float, float, float]]] = {t.label: [] for t in everyone}
    for _ in range(ROUNDS):
        for t in everyone:
            tput[t.label].append(await throughput_round(t, links[t.label]))
    med = {k: [_median([r[i] for r in v]) for i in range(3)] for k, v in tput.items()}
    lq, bq = med[liaison.label], med[bare.label]
    rows.append(
        (
            f"relay throughput (candidate msgs, window {WINDOW})",
            f"{lq[0]:,.0f} msg/s",
            f"{bq[0]:,.0f} msg/s bare relay",
            f"{lq[0] / bq[0]:.2f}× (target ≥ 0.9×: {_met(lq[0] >= 0.9 * bq[0])})",
        )
    )
    rows.append(
        (
            "server CPU per relayed message",
            f"{lq[1]:.1f} µs",
            f"{bq[1]:.1f} µs bare relay",
            f"{lq[1] / bq[1]:.2f}×",
        )
    )
    for t in others:
        q = med[t.label]
        rows.append(
            (
                f"relay throughput, {t.label}",
                f"{q[0]:,.0f} msg/s ({q[1]:.1f} µs CPU)",
                f"{bq[0]:,.0f} msg/s bare relay",
                f"{q[0] / bq[0]:.2f}×",
            )
        )
    client = max(m[2] for m in med.values())
    rows.append(
        ("bench client CPU per message (sanity)", f"≤ {client:.1f} µs", "-", "must stay below the servers'")
    )

    # Latency at steady rates.
    for rate in RATES:
        lat = {}
        for t in (bare, liaison):
            samples, lost = await latency_run(links[t.label], rate)
            lat[t.label] = (percentiles(samples), lost)
        (lp, ll), (bp, bl) = lat[liaison.label], lat[bare.label]
        for p in ("p50", "p99"):
            rows.append(
                (
                    f"relay latency {p} at {rate:,}/s",
                    f"{lp[p]:.2f} ms",
                    f"{bp[p]:.2f} ms bare relay",
                    f"{lp[p] / bp[p]:.2f}×" + (f" (lost {ll}/{bl})" if ll or bl else ""),
                )
            )
    for t in everyone:
        for link in links[t.label][:2]:
            link.close()

    # Call setup with two aiortc peers.
    rows.extend(await _calls(bare, liaison, users))

    # Idle joined connections.
    for t in (bare, liaison):
        if fd_limit(t.pid) < IDLE + 200:
            raise AssertionError(f"{t.label}: open-file limit {fd_limit(t.pid)} < {IDLE + 200}")
    (bk, brate, bcpu, bfail), (lk, lrate, lcpu, lfail) = (
        await idle_connections(bare),
        await idle_connections(liaison),
    )
    rows.append(
        (
            f"memory per idle joined connection ({IDLE:,})",
            f"{lk:.1f} KiB",
            f"{bk:.1f} KiB bare relay",
            f"{lk / bk:.2f}× (target ≤ 16 KB: {_met(lk * 1024 <= 16_000)})",
        )
    )
    rows.append(
        (
            f"connection setup (open + join, {CONCURRENCY} at once)",
            f"{lrate:,.0f} conn/s",
            f"{brate:,.0f} conn/s bare relay",
            f"{lrate / brate:.2f}×",
        )
    )
    rows.append(
        (
            "server CPU per connection set up",
            f"{lcpu:.2f} ms",
            f"{bcpu:.2f} ms bare relay",
            f"{lcpu / bcpu:.2f}×",
        )
    )
    for t in others:
        ok, _, _, _ = await idle_connections(t)
        rows.append(
            (
                f"memory per idle connection, {t.label}",
                f"{ok:.1f} KiB",
                f"{bk:.1f} KiB bare relay",
                f"{ok / bk:.2f}×",
            )
        )
    if lfail or bfail:
        rows.append(
            (
                "idle joins that failed",
                str(len(lfail)),
                f"{len(bfail)} bare relay",
                f"of {IDLE}; first: {(lfail or bfail)[0][:80]}",
            )
        )
    return rows


async def _calls(bare: Target, liaison: Target, users: dict) -> list[tuple[str, str, str, str]]:
    async with httpx.AsyncClient(base_url=f"http://{liaison.api}", timeout=10) as client:
        headers = {}
        for name in (users["clinician"], users["specialists"][0]):
            r = await client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
            headers[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        clinician, specialist = headers[users["clinician"]], headers[users["specialists"][0]]
        consult = (await client.post("/api/v1/consults", json=BODY, headers=clinician)).json()
        r = await client.post(f"/api/v1/consults/{consult['id']}/accept", headers=specialist)
        assert r.status_code == 200, r.text

        async def call_tokens() -> tuple[dict, dict]:
            out = []
            for h in (clinician, specialist):
                r = await client.post(f"/api/v1/consults/{consult['id']}/call-token", headers=h)
                assert r.status_code == 200, r.text
                out.append({"type": "join", "token": r.json()["token"]})
            return out[0], out[1]

        times: dict[str, list[tuple[float, float]]] = {bare.label: [], liaison.label: []}
        for i in range(CALLS + 1):  # the first of each is a warm-up
            room = f"call-{uuid.uuid4().hex[:8]}"
            for t in (liaison, bare) if i % 2 else (bare, liaison):  # neither always goes first
                hello_a, hello_b = (
                    await call_tokens() if t is liaison else (t.hello(room, 0), t.hello(room, 1))
                )
                took = await call_once(t, hello_a, hello_b)
                if i:
                    times[t.label].append(took)
                await asyncio.sleep(SETTLE)  # let the records of the last call be written before the next
    (lj, lm), (bj, bm) = (
        [_median([x[i] * 1000 for x in times[t.label]]) for i in (0, 1)] for t in (liaison, bare)
    )
    return [
        (
            f"call setup, 2 aiortc peers (median of {CALLS})",
            f"{lm:.1f} ms",
            f"{bm:.1f} ms bare relay",
            f"{lm / bm:.2f}× (target ≤ 1.1×: {_met(lm <= 1.1 * bm)})",
        ),
        ("  of which: both peers joined", f"{lj:.1f} ms", f"{bj:.1f} ms bare relay", f"{lj / bj:.2f}×"),
    ]
