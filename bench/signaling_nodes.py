"""Signaling across nodes: relay latency between two peers on different `liaison serve` processes
(through Redis: one script call that finds the target's node and publishes to it, one Pub/Sub
delivery), against the relay between two peers on the same node, measured in the same run.

Two nodes in processes of their own on 127.0.0.1, sharing PostgreSQL and Redis. Two accepted
consults give two rooms: in one both peers join node 1 (same node), in the other one peer joins
node 1 and the other node 2 (cross node). The sender paces ICE candidates at RATE a second, each
carrying its sequence number in the candidate's foundation; the receiver timestamps arrivals.
ROUNDS rounds alternate the two paths (ROUND_S seconds each, the first WARMUP messages of each
dropped) and the samples are pooled per path.
"""

import asyncio
import contextlib
import json
import time

import httpx
import websockets

from bench.common import BODY, PASSWORD, node_settings, percentiles, scratch_database, seed
from bench.nodes import Node

RATE, ROUND_S, ROUNDS, WARMUP = 500, 3.0, 4, 100  # 1,500 messages a round: 6,000 a path
CANDIDATE = "candidate:{} 1 udp 1677729535 192.0.2.2 46154 typ srflx raddr 10.0.0.1 rport 46154 generation 0"


async def run() -> list[tuple[str, str, str, str]]:
    async with scratch_database() as url:
        users = await seed(url, specialists=1)
        settings = node_settings(
            url, escalation_worker=False, signaling_rate_per_second=RATE * 4, signaling_rate_burst=RATE * 4
        )
        nodes = [Node(settings), Node(settings)]
        try:
            await asyncio.gather(*(n.start() for n in nodes))
            return await _measure(nodes[0].host, nodes[1].host, users)
        finally:
            for n in nodes:
                n.stop()


async def _measure(one: str, two: str, users: dict) -> list[tuple[str, str, str, str]]:
    async with httpx.AsyncClient(base_url=f"http://{one}", timeout=10) as client:
        clinician, specialist = users["clinician"], users["specialists"][0]
        auth = {}
        for name in (clinician, specialist):
            r = await client.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
            auth[name] = {"Authorization": f"Bearer {r.json()['access_token']}"}
        rooms = [await _accepted_consult(client, auth[clinician], auth[specialist]) for _ in range(2)]

        async def tokens(consult_id: str) -> tuple[str, str]:
            return tuple(
                [
                    (
                        await client.post(f"/api/v1/consults/{consult_id}/call-token", headers=auth[who])
                    ).json()["token"]
                    for who in (clinician, specialist)
                ]
            )

        samples: dict[str, list[float]] = {"same": [], "cross": []}
        lost = {"same": 0, "cross": 0}
        for _ in range(ROUNDS):
            for path, room, hosts in (("same", rooms[0], (one, one)), ("cross", rooms[1], (one, two))):
                got, missing = await _round(*hosts, *await tokens(room))
                samples[path] += got
                lost[path] += missing
    same, cross = percentiles(samples["same"]), percentiles(samples["cross"])
    return [
        (
            f"relay across nodes via Redis, p50 ({RATE}/s)",
            f"{cross['p50']:.2f} ms",
            f"{same['p50']:.2f} ms same node",
            f"{cross['p50'] / same['p50']:.1f}×",
        ),
        (
            f"relay across nodes via Redis, p99 ({RATE}/s)",
            f"{cross['p99']:.2f} ms",
            f"{same['p99']:.2f} ms same node",
            f"{cross['p99'] / same['p99']:.1f}×",
        ),
        (
            "relay across nodes: not delivered",
            str(lost["cross"]),
            f"{lost['same']} same node",
            f"of {cross['n'] + lost['cross']}",
        ),
    ]


async def _accepted_consult(client: httpx.AsyncClient, requester: dict, specialist: dict) -> str:
    consult = (await client.post("/api/v1/consults", json=BODY, headers=requester)).json()
    for _ in range(100):  # the offer is made by the routing that follows the POST
        r = await client.post(f"/api/v1/consults/{consult['id']}/accept", headers=specialist)
        if r.status_code == 200:
            return consult["id"]
        await asyncio.sleep(0.05)
    raise RuntimeError(f"could not accept the bench consult: {r.status_code} {r.text}")


async def _round(host_a: str, host_b: str, token_a: str, token_b: str) -> tuple[list[float], int]:
    """A (on host_a) sends RATE candidates a second to B (on host_b) for ROUND_S; latencies in ms."""
    count = int(RATE * ROUND_S)
    async with (
        websockets.connect(f"ws://{host_a}/api/v1/signaling", compression=None) as a,
        websockets.connect(f"ws://{host_b}/api/v1/signaling", compression=None) as b,
    ):
        await a.send(json.dumps({"type": "join", "token": token_a}))
        assert json.loads(await a.recv())["type"] == "joined"
        await b.send(json.dumps({"type": "join", "token": token_b}))
        to = json.loads(await b.recv())["peer_id"]
        assert json.loads(await a.recv())["type"] == "peer-joined"
        sent, arrived = [0.0] * count, {}
        receiver = asyncio.create_task(_receive(b, arrived, count))
        start = time.perf_counter()
        for i in range(count):
            delay = start + i / RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[i] = time.perf_counter()
            await a.send(
                json.dumps(
                    {
                        "type": "candidate",
                        "to": to,
                        "candidate": CANDIDATE.format(i),
                        "sdpMid": "0",
                        "sdpMLineIndex": 0,
                    }
                )
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver, 5)
        for ws in (a, b):
            await ws.send('{"type":"leave"}')
    got = [(arrived[i] - sent[i]) * 1000 for i in range(WARMUP, count) if i in arrived]
    return got, count - WARMUP - len(got)


async def _receive(ws, arrived: dict[int, float], count: int) -> None:
    async for raw in ws:
        now = time.perf_counter()
        message = json.loads(raw)
        if message.get("type") == "candidate":
            arrived[int(message["candidate"][10 : message["candidate"].index(" ")])] = now
            if len(arrived) == count:
                return
