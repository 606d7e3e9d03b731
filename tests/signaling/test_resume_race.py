"""Two peers shown reconnecting resume at the same moment, on two nodes (or on one), into a room with
one place left: exactly one gets back in, whatever the interleaving (the place is taken in one step
on Redis, as a join's is; on one node, in one step of its own rooms), and the other is refused
`room_full`."""

import asyncio
import contextlib
import json
import uuid

import pytest
import websockets

from auth.context import build_auth_context
from signaling.calls import tokens
from signaling.core.messages import ProtocolError
from tests.conftest import make_settings, reset_env
from tests.live import serve
from tests.signaling.test_multinode import (  # noqa: F401 (fabrics, nodes, pair, scaled: fixtures)
    MAX_PEERS,
    TTL,
    _room,
    _settings,
    fabrics,
    nodes,
    pair,
    recv,
    scaled,
)

ROUNDS = 40


class Room:
    """A fresh room on the servers at `hosts`; each join is a user of its own, with a call token
    signed here with the servers' key (`ctx`)."""

    def __init__(self, hosts: list[str], ctx, stack: contextlib.AsyncExitStack) -> None:
        self.hosts, self.ctx, self.stack = hosts, ctx, stack
        self.name = f"race-{uuid.uuid4().hex}"

    async def open(self, node: int):
        url = f"ws://{self.hosts[node]}/api/v1/signaling"
        return await self.stack.enter_async_context(websockets.connect(url, compression=None))

    def token(self) -> str:
        user, org = uuid.uuid4(), uuid.uuid4()
        return tokens.issue(self.ctx, user_id=user, org_id=org, room=self.name, consult_id=None)[0]

    async def join(self, node: int, token: str | None = None) -> tuple[object, dict]:
        ws = await self.open(node)
        await ws.send(json.dumps({"type": "join", "token": token or self.token()}))
        return ws, await recv(ws)

    async def join_once_there_is_room(self, node: int):
        """Joined, after refusals while the nodes had not yet written a lost link's state (a token
        refused for want of room is not spent)."""
        token = self.token()
        for _ in range(100):
            ws, got = await self.join(node, token)
            if got.get("code") != "room_full":
                assert got["type"] == "joined", got
                return ws
            await ws.close()
            await asyncio.sleep(0.02)
        raise AssertionError("the lost links never freed their places")


async def _reconnecting(ws, peers: set[str]) -> None:
    """Until `ws` has heard that each of `peers` is reconnecting (joins may come before)."""
    while peers:
        got = await recv(ws)
        if got["type"] == "peer-state" and got["state"] == "reconnecting":
            peers.discard(got["peer_id"])


async def _round(room: Room) -> list[str]:
    """a, b on node 0 and c on node 1 fill the room; b and c lose their links; d takes one of the two
    places that freed; b and c resume at once: what each was answered."""
    a, _ = await room.join(0)
    b, joined_b = await room.join(0)
    c, joined_c = await room.join(1)
    b.transport.abort()
    c.transport.abort()
    await _reconnecting(a, {joined_b["peer_id"], joined_c["peer_id"]})
    await room.join_once_there_is_room(1)
    back = await asyncio.gather(room.open(0), room.open(1))
    secrets = (joined_b["resume"], joined_c["resume"])
    await asyncio.gather(
        *(ws.send(json.dumps({"type": "resume", "resume": s})) for ws, s in zip(back, secrets, strict=True))
    )
    answers = await asyncio.gather(*map(recv, back))
    return sorted(got["type"] if got["type"] != "error" else got["code"] for got in answers)


async def _rounds(hosts: list[str], ctx) -> list[list[str]]:
    outcomes = []
    async with asyncio.timeout(120):
        for _ in range(ROUNDS):
            async with contextlib.AsyncExitStack() as stack:  # each round's sockets close after it
                outcomes.append(await _round(Room(hosts, ctx, stack)))
    return outcomes


async def test_racing_resumes_on_two_nodes_never_overfill_a_room(nodes):
    started, env = nodes
    assert MAX_PEERS == 3  # a and d, and one of b and c
    ctx = build_auth_context(_settings(env, TTL), None)  # the nodes' signing key
    outcomes = await _rounds([n.host for n in started], ctx)
    assert outcomes == [["joined", "room_full"]] * ROUNDS


async def test_racing_resumes_on_one_node_never_overfill_a_room(env):
    await reset_env(env)
    settings = make_settings(env["database_url"], env["redis_url"], signaling_max_peers=MAX_PEERS)
    async with serve(settings) as (app, host):
        outcomes = await _rounds([host, host], app.state.auth)
    assert outcomes == [["joined", "room_full"]] * ROUNDS


async def test_a_peer_that_left_is_not_reseated(fabrics):
    """A resume that reaches Redis after its peer's leave (a tombstone) must not bring it back: the
    other nodes would hear a ghost `peer-joined`."""
    (f1, _), (f2, r2) = fabrics
    room, a = _room(), {"peer_id": "a", "user_id": "ua"}
    await f2.joined(room, {"peer_id": "b", "user_id": "ub"}, known=[])
    await f1.joined(room, a, known=await f1.remote_peers(room))
    await f1.left(room, a)
    with pytest.raises(ProtocolError) as refused:
        await f1.reseat(room, a, max_peers=MAX_PEERS)
    assert refused.value.code == "resume_failed"
    assert await f2.remote_peers(room) == []
    await asyncio.sleep(0.2)  # any announcement would have been heard by now
    assert [m["type"] for m in r2.sent["b"]] == ["peer-joined", "peer-left"]
