"""Several signaling nodes as one fabric, through Redis.

Membership. Each room has a hash `liaison:sig:room:<room>` {peer_id: {peer_id, user_id, node,
expires}} plus a `~seq` field that every change increments. Nodes refresh their own peers'
`expires` (a heartbeat every ttl/3) and, in the same atomic script, delete the expired entries
of other nodes in the rooms they have local peers in; the script that deletes an entry is the
one that announces it, so a dead node's peers leave exactly once. Every change (join, leave,
expiry, a stalled node's peers coming back) is published on one channel with its `seq`, except a
join into a room no other node has live peers in (nobody would act on it).

Joins. A join is one script (`admit`): it refuses a full room (counting every node's peers, so
racing joins cannot overfill it) before the call token is spent, then does the ledger's step and,
for a fresh token, enters the peer. A join the database must decide first enters afterwards, with
the Join script (signaling.fabric.scripts).

Views. A node keeps, for each room it has local peers in, the remote members it believes are
present, and for each local peer which remote peers that peer has been told about
(signaling.core.views: pure state). Events and the snapshots returned by the admission, join and
heartbeat scripts are applied last-writer-wins by `seq`, and each local peer is then told the
difference (peer-joined / peer-left): no duplicates, and a lost Pub/Sub message (a Redis
reconnect) is repaired by the next heartbeat.

Relay. A message for a peer of another node is one script call: look the peer's node up in the
room hash and PUBLISH to that node's channel (`False` when the peer is in no live node, so the
sender hears `unknown_peer`). Relay between two peers of the same node never reaches this module.

Time is Redis's (TIME inside the scripts), so nodes' clocks need not agree.
"""

import asyncio
import contextlib
import json
import logging
import secrets
import time

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from api.metrics import STORE_ERRORS
from api.tasks import cancel, woken
from signaling.core.admission import CallGrant
from signaling.core.messages import ProtocolError
from signaling.core.rooms import room_full
from signaling.core.views import Sends, Views, listed
from signaling.fabric import scripts
from signaling.fabric.lane import Lane
from signaling.fabric.ledger import RedisLedger
from signaling.fabric.local import Admission, Deliver
from signaling.fabric.lua import Script

log = logging.getLogger("liaison.signaling.fabric")
PIPELINE_CHUNK = 500


class RedisFabric:
    """The fabric of a node that shares rooms with other nodes through Redis."""

    def __init__(
        self, redis: Redis, *, ledger: RedisLedger, presence_ttl: float = 10.0, heartbeat: float | None = None
    ) -> None:
        self._redis, self.ledger = redis, ledger
        self.node = secrets.token_hex(8)
        self.ttl_ms = int(presence_ttl * 1000)
        self.interval = heartbeat if heartbeat is not None else presence_ttl / 3
        self.key_ttl_ms = max(60_000, 6 * self.ttl_ms)  # a room no node refreshes disappears by itself
        db = redis.connection_pool.connection_kwargs.get("db", 0)  # Pub/Sub ignores databases; names don't
        self._room_prefix = "liaison:sig:room:"
        self._node_prefix = f"liaison:sig:{db}:node:"
        self._events = f"liaison:sig:{db}:events"
        self._node_channel = self._node_prefix + self.node
        self._scripts = {described: redis.register_script(described.SOURCE) for described in scripts.SCRIPTS}
        self._lane = Lane(redis)  # joins and relays; the heartbeat's pipelines go through the client
        self._views = Views(self.node, absent_after=self.ttl_ms / 1000)
        self._deliver: Deliver | None = None
        self._tasks: list[asyncio.Task] = []
        self._ready = asyncio.Event()
        self._settled = asyncio.Event()  # the first subscription attempt ended, either way
        self._kick = asyncio.Event()

    # -- the interface the server uses -------------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._tasks = [
            asyncio.create_task(self._listen(), name=f"signaling-fabric-listen-{self.node}"),
            asyncio.create_task(self._beat(), name=f"signaling-fabric-heartbeat-{self.node}"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._settled.wait(), timeout=5)
        if not self._ready.is_set():  # Redis is away: serve; joins answer fabric_unavailable until it is back
            log.warning("signaling fabric: Redis did not answer at start; listening for it in the background")

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel(task)
        self._tasks = []
        # Leave at once rather than let the others wait for our peers' presence to expire.
        views, self._views.rooms = self._views.rooms, {}
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3):
                for room, view in views.items():
                    for peer_id in view.local:
                        await self._run(self._leave(room, peer_id))
        await self._lane.close()

    async def admit(self, grant: CallGrant, peer: dict, *, max_peers: int, enter: bool) -> Admission:
        """Spend a call token unless the room is full, ask the ledger about it, and learn the room's
        remote peers; with `enter`, a fresh token's peer also enters the room: one round trip."""
        room, ledger = grant.room, self.ledger
        entry = self._views.enter(room, peer) if enter else ""
        try:
            answer = await self._run(
                scripts.Admit(
                    ledger=ledger.step(grant),
                    room_key=self._room_prefix + room,
                    me=self.node,
                    max_peers=max_peers,
                    ttl_ms=self.ttl_ms,
                    key_ttl_ms=self.key_ttl_ms,
                    channel=self._events,
                    room=room,
                    entry=entry,
                )
            )
        except BaseException as exc:
            self._views.forget(room, peer["peer_id"])
            if isinstance(exc, RedisError):
                raise self._unavailable(exc) from None
            raise
        code = int(answer[0])
        if not code or code == 3 or not answer[1]:
            # refused, or left to a later Join (the database decides first)
            self._views.forget(room, peer["peer_id"])
        if code == 3:
            raise room_full(max_peers)
        verdict = ledger.verdict(code)
        seq, entries = self._decode(answer[2:])
        return Admission(verdict, [listed(e) for e in entries], (seq, entries) if answer[1] else None)

    async def reseat(self, room: str, peer: dict, *, max_peers: int) -> list[dict]:
        """A local peer shown reconnecting takes a place in its room again, in one script that counts
        every node's peers: two resumes on two nodes cannot both take the last place. Answers the
        room's remote peers; room_full when there is no place, resume_failed if it left meanwhile."""
        entry = json.dumps({**peer, "node": self.node}, separators=(",", ":"))
        # Before the script: a heartbeat from now on writes it connected, not reconnecting again.
        self._views.restate(room, peer["peer_id"], "connected")
        try:
            answer = await self._run(self._reseat(room, entry, max_peers))
            code = int(answer[0])
        except BaseException as exc:
            self._views.restate(room, peer["peer_id"], "reconnecting")
            if isinstance(exc, RedisError):
                raise self._unavailable(exc) from None
            raise
        if code != 1:
            self._views.restate(room, peer["peer_id"], "reconnecting")
            raise (
                room_full(max_peers) if code == 3 else ProtocolError("resume_failed", "It has left the call")
            )
        return [listed(e) for e in self._decode(answer[1:])[1]]

    async def remote_peers(self, room: str) -> list[dict]:
        try:
            _, entries = self._decode(
                await self._run(scripts.Peers(room_key=self._room_prefix + room, me=self.node))
            )
        except RedisError as exc:
            raise self._unavailable(exc) from None
        return [listed(e) for e in entries]

    async def joined(
        self,
        room: str,
        peer: dict,
        known: list[dict] | None = None,
        entered: tuple[int, list[dict]] | None = None,
    ) -> None:
        """A local peer joined, having been told `known` (the remote peers when it asked); `entered`
        is its admission's snapshot if the admission already put it in the room."""
        peer_id, told = peer["peer_id"], known or []
        if entered is None:
            entry = self._views.enter(room, peer, told)
            try:
                entered = self._decode(
                    await self._run(
                        scripts.Join(
                            room_key=self._room_prefix + room,
                            me=self.node,
                            ttl_ms=self.ttl_ms,
                            key_ttl_ms=self.key_ttl_ms,
                            channel=self._events,
                            room=room,
                            entry=entry,
                        )
                    )
                )
            except RedisError:
                log.warning(
                    "could not announce peer %s in %s; the next heartbeat will", peer_id, room, exc_info=True
                )
                self._views.unannounced(room, peer_id)
                return
        sends = self._views.joined(room, peer_id, told, *entered, now=time.monotonic())
        if sends is None:  # it left meanwhile, and the leave may have reached Redis first
            await self.left(room, peer)
            return
        await self._send(sends)

    async def left(self, room: str, peer: dict) -> None:
        self._views.forget(room, peer["peer_id"])
        try:
            await self._run(self._leave(room, peer["peer_id"]))
        except RedisError:  # its presence will expire and another node will announce it
            log.warning("could not announce that %s left %s", peer["peer_id"], room, exc_info=True)

    async def restate(self, room: str, peer_id: str, state: str) -> None:
        """Write the peer's new state into its presence now (a heartbeat of its room), not at the next beat."""
        entries = self._views.restate(room, peer_id, state)
        if entries is None:
            return
        beat = scripts.Heartbeat(
            room_key=self._room_prefix + room,
            me=self.node,
            ttl_ms=self.ttl_ms,
            key_ttl_ms=self.key_ttl_ms,
            channel=self._events,
            room=room,
            entries=tuple(entries),
        )
        try:
            await self._run(beat)
        except RedisError:  # the next heartbeat writes it
            log.warning("could not write %s's state in %s", peer_id, room, exc_info=True)

    async def forward(self, room: str, to: str, message: dict) -> bool:
        payload = json.dumps({"room": room, "to": to, "message": message}, separators=(",", ":"))
        try:
            call = scripts.Forward(
                room_key=self._room_prefix + room,
                me=self.node,
                node_prefix=self._node_prefix,
                peer_id=to,
                payload=payload,
            )
            return await self._run(call) > 0
        except RedisError as exc:
            raise self._unavailable(exc) from None

    async def _send(self, sends: Sends) -> None:
        for room, to, message in sends:
            with contextlib.suppress(Exception):
                assert self._deliver is not None  # start() sets it before anything is sent
                await self._deliver(room, to, message)

    # -- background ----------------------------------------------------------------------------

    async def _listen(self) -> None:
        node, events = self._node_channel.encode(), self._events.encode()
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(node, events)
                    subscribed = 0
                    async for message in pubsub.listen():
                        kind = message["type"]
                        if kind == "subscribe":
                            subscribed += 1
                            if subscribed == 2:
                                self._ready.set()
                                self._settled.set()
                                self._kick.set()  # after a reconnect, reconcile now rather than at the next beat
                            continue
                        if kind != "message":
                            continue
                        try:
                            data = json.loads(message["data"])
                            if message["channel"] == node:
                                assert self._deliver is not None  # start() set it before listening
                                await self._deliver(data["room"], data["to"], data["message"])
                            else:
                                await self._send(self._views.event(data))
                        except Exception:
                            log.exception("could not act on a fabric message")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._settled.set()
                log.warning("signaling fabric lost Redis (%s: %s); retrying", type(exc).__name__, exc)
                await asyncio.sleep(0.5)

    async def _beat(self) -> None:
        while True:
            await woken(self._kick, self.interval)
            self._kick.clear()
            try:
                await self._heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("signaling presence heartbeat failed", exc_info=True)

    async def _heartbeat(self) -> None:
        """Refresh our peers, sweep the expired peers of other nodes, and reconcile every view."""
        work = self._views.refreshing()
        for start in range(0, len(work), PIPELINE_CHUNK):
            chunk = work[start : start + PIPELINE_CHUNK]
            answers = await self._pipeline(
                [
                    scripts.Heartbeat(
                        room_key=self._room_prefix + room,
                        me=self.node,
                        ttl_ms=self.ttl_ms,
                        key_ttl_ms=self.key_ttl_ms,
                        channel=self._events,
                        room=room,
                        entries=tuple(entries),
                    )
                    for room, _, entries in chunk
                ]
            )
            for (room, view, _), answer in zip(chunk, answers, strict=False):
                seq, entries = self._decode(answer)
                await self._send(self._views.snapshot(room, view, seq, entries, time.monotonic()))

    # -- Redis ---------------------------------------------------------------------------------

    def _reseat(self, room: str, entry: str, max_peers: int) -> scripts.Reseat:
        return scripts.Reseat(
            room_key=self._room_prefix + room,
            me=self.node,
            max_peers=max_peers,
            ttl_ms=self.ttl_ms,
            key_ttl_ms=self.key_ttl_ms,
            channel=self._events,
            room=room,
            entry=entry,
        )

    def _leave(self, room: str, peer_id: str) -> scripts.Leave:
        return scripts.Leave(
            room_key=self._room_prefix + room,
            key_ttl_ms=self.key_ttl_ms,
            channel=self._events,
            room=room,
            peer_id=peer_id,
        )

    async def _run(self, call: Script):
        """One script on the lane, its KEYS and ARGV from its description."""
        return await self._lane.run(self._scripts[type(call)], call.keys(), call.args())

    async def _pipeline(self, calls: list[Script]) -> list:
        for attempt in (1, 2):
            async with self._redis.pipeline(transaction=False) as pipe:
                for call in calls:
                    keys = call.keys()
                    pipe.evalsha(self._scripts[type(call)].sha, len(keys), *keys, *call.args())
                try:
                    return await pipe.execute()
                except NoScriptError:  # Redis restarted and forgot the scripts
                    if attempt == 2:
                        raise
                    for s in self._scripts.values():
                        s.sha = await self._redis.script_load(s.script)
        return []

    @staticmethod
    def _decode(answer: list) -> tuple[int, list[dict]]:
        return int(answer[0]), [json.loads(e) for e in answer[1:]]

    @staticmethod
    def _unavailable(exc: Exception) -> ProtocolError:
        log.warning("signaling fabric: Redis is not answering (%s)", exc)
        STORE_ERRORS.labels("redis").inc()
        return ProtocolError("fabric_unavailable", "Calls are briefly unavailable; try again")


async def _undelivered(room: str, peer_id: str, message: dict) -> bool:
    return False
