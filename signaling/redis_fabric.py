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
the JOIN script.

Views. A node keeps, for each room it has local peers in, the remote members it believes are
present, and for each local peer which remote peers that peer has been told about. Events and
the snapshots returned by the admission, join and heartbeat scripts are applied last-writer-wins by `seq`,
and each local peer is then told the difference (peer-joined / peer-left): no duplicates, and a
lost Pub/Sub message (a Redis reconnect) is repaired by the next heartbeat.

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
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from api.tasks import cancel
from signaling import redis_scripts as scripts
from signaling.fabric import Admission, Deliver
from signaling.ledger import RedisLedger
from signaling.messages import ProtocolError
from signaling.redis_lane import Lane
from signaling.rooms import room_full
from signaling.tokens import CallGrant

log = logging.getLogger("liaison.signaling.fabric")
PIPELINE_CHUNK = 500


@dataclass(slots=True)
class _View:
    """One room, as this node sees it: remote members (versioned by seq) and what each local peer was told."""

    members: dict[str, dict] = field(default_factory=dict)  # remote peer id -> {peer_id, user_id}
    versions: dict[str, int] = field(default_factory=dict)  # remote peer id -> seq of the last event applied
    floor: int = 0  # seq of the newest snapshot applied: events at or below it are already reflected
    local: dict[str, str] = field(default_factory=dict)  # local peer id -> its entry (json, with this node)
    told: dict[str, dict[str, dict]] = field(default_factory=dict)  # local peer id -> remote peers it knows
    pending: dict[str, None] = field(default_factory=dict)  # local peers whose join script has not answered
    # yet (a dict: 64 bytes empty against a set's 216, and there is a view per room)
    missing: dict[str, float] = field(default_factory=dict)  # members a snapshot lacked, since (monotonic)


def _public(entry: dict) -> dict:
    return {"peer_id": entry["peer_id"], "user_id": entry["user_id"]}


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
        self._scripts = {
            name: redis.register_script(src)
            for name, src in (
                ("join", scripts.JOIN),
                ("leave", scripts.LEAVE),
                ("heartbeat", scripts.HEARTBEAT),
                ("peers", scripts.PEERS),
                ("forward", scripts.FORWARD),
                ("admit", scripts.ADMIT),
            )
        }
        self._lane = Lane(redis)  # joins and relays; the heartbeat's pipelines go through the client
        self._views: dict[str, _View] = {}
        self._deliver: Deliver = _undelivered  # until `start` is given the server's
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
        views, self._views = self._views, {}
        with contextlib.suppress(Exception):
            async with asyncio.timeout(3):
                for room, view in views.items():
                    for peer_id in view.local:
                        await self._run("leave", room, self._events, room, peer_id)
        await self._lane.close()

    async def admit(self, grant: CallGrant, peer: dict, *, max_peers: int, enter: bool) -> Admission:
        """Spend a call token unless the room is full, ask the ledger about it, and learn the room's
        remote peers; with `enter`, a fresh token's peer also enters the room: one round trip."""
        room, ledger = grant.room, self.ledger
        view = self._views.setdefault(room, _View()) if enter else None
        entry = self._enter(view, peer) if view is not None else ""
        try:
            answer = await self._lane.run(
                self._scripts["admit"],
                ledger.keys(grant) + [self._room_prefix + room],
                ledger.args(grant)
                + [self.node, max_peers, self.ttl_ms, self.key_ttl_ms, self._events, room, entry],
            )
        except BaseException as exc:
            self._forget(room, peer["peer_id"])
            if isinstance(exc, RedisError):
                raise self._unavailable(exc) from None
            raise
        code = int(answer[0])
        if not code or code == 3 or not answer[1]:
            self._forget(
                room, peer["peer_id"]
            )  # refused, or left to a later JOIN (the database decides first)
        if code == 3:
            raise room_full(max_peers)
        verdict = ledger.verdict(code)
        seq, entries = self._decode(answer[2:])
        return Admission(verdict, [_public(e) for e in entries], (seq, entries) if answer[1] else None)

    async def remote_peers(self, room: str) -> list[dict]:
        try:
            _, entries = self._decode(await self._run("peers", room, self.node))
        except RedisError as exc:
            raise self._unavailable(exc) from None
        return [_public(e) for e in entries]

    async def joined(self, room: str, peer: dict, known: list[dict] | None = None, entered=None) -> None:
        """A local peer joined, having been told `known` (the remote peers when it asked); `entered`
        is its admission's snapshot if the admission already put it in the room."""
        peer_id, told = peer["peer_id"], {p["peer_id"]: p for p in known or []}
        if entered is None:
            view = self._views.setdefault(room, _View())
            entry = self._enter(view, peer)
            view.told[peer_id] = told
            try:
                entered = self._decode(
                    await self._run(
                        "join", room, self.node, self.ttl_ms, self.key_ttl_ms, self._events, room, entry
                    )
                )
            except RedisError:
                log.warning(
                    "could not announce peer %s in %s; the next heartbeat will", peer_id, room, exc_info=True
                )
                view.pending.pop(peer_id, None)
                return
        current = self._views.get(room)
        if (
            current is None or peer_id not in current.local
        ):  # it left meanwhile, and the leave may have reached Redis first
            await self.left(room, peer)
            return
        current.told[peer_id] = told
        current.pending.pop(peer_id, None)
        await self._send(self._apply_snapshot(room, current, *entered))

    def _enter(self, view: _View, peer: dict) -> str:
        """Count a joining peer in its room's view: events for the room are kept from now on, and
        none reach the peer until its join is done (`pending`)."""
        entry = json.dumps(
            {"peer_id": peer["peer_id"], "user_id": peer["user_id"], "node": self.node}, separators=(",", ":")
        )
        view.local[peer["peer_id"]] = entry
        view.told[peer["peer_id"]] = {}
        view.pending[peer["peer_id"]] = None
        return entry

    def _forget(self, room: str, peer_id: str) -> None:
        view = self._views.get(room)
        if view is not None:
            view.local.pop(peer_id, None)
            view.told.pop(peer_id, None)
            view.pending.pop(peer_id, None)
            if not view.local:
                del self._views[room]

    async def left(self, room: str, peer: dict) -> None:
        self._forget(room, peer["peer_id"])
        try:
            await self._run("leave", room, self._events, room, peer["peer_id"])
        except RedisError:  # its presence will expire and another node will announce it
            log.warning("could not announce that %s left %s", peer["peer_id"], room, exc_info=True)

    async def forward(self, room: str, to: str, message: dict) -> bool:
        payload = json.dumps({"room": room, "to": to, "message": message}, separators=(",", ":"))
        try:
            return await self._run("forward", room, self.node, self._node_prefix, to, payload) > 0
        except RedisError as exc:
            raise self._unavailable(exc) from None

    # -- views ---------------------------------------------------------------------------------

    def _apply_event(self, event: dict) -> list[tuple[str, str, dict]]:
        room = event.get("room", "")
        view = self._views.get(room)
        if view is None:
            return []
        entry, seq = event["peer"], int(event["seq"])
        peer_id, joined = entry["peer_id"], event["event"] == "peer-joined"
        if entry["node"] == self.node or seq <= view.versions.get(peer_id, 0):
            return []  # our own peers are the server's business; older news is already applied
        if seq <= view.floor and (joined or peer_id not in view.missing):
            return []  # a snapshot already said so (except a departure it left pending: this confirms it)
        view.versions[peer_id] = seq
        view.missing.pop(peer_id, None)
        if joined:
            view.members[peer_id] = _public(entry)
        else:
            view.members.pop(peer_id, None)
        return self._sync(room, view)

    def _apply_snapshot(
        self, room: str, view: _View, seq: int, entries: list[dict]
    ) -> list[tuple[str, str, dict]]:
        """Bring the view up to a snapshot (the membership at `seq`). A member the snapshot lacks,
        with no event saying it left, is dropped only if still absent a heartbeat and a half later:
        after Redis loses its data (a restart, a failover) the members' nodes put them back first."""
        if seq < view.floor:
            return self._sync(room, view)  # older than what we know: nothing to learn
        now = time.monotonic()
        present = {e["peer_id"]: _public(e) for e in entries}
        for peer_id in set(view.members) | set(present):
            if view.versions.get(peer_id, 0) >= seq:
                continue  # an event newer than the snapshot decided this one
            if peer_id in present:
                view.members[peer_id] = present[peer_id]
                view.missing.pop(peer_id, None)
            elif now - view.missing.setdefault(peer_id, now) >= self.ttl_ms / 1000:
                # Absent from snapshots for a whole presence TTL: gone, by the same rule as expiry. A
                # shorter wait announced spurious departures when Redis lost a room and the other
                # node's heartbeat ran late under load.
                view.members.pop(peer_id, None)
                view.missing.pop(peer_id, None)
        view.floor = seq
        view.versions = {p: v for p, v in view.versions.items() if v > seq}
        return self._sync(room, view)

    @staticmethod
    def _sync(room: str, view: _View) -> list[tuple[str, str, dict]]:
        """Tell each local peer how the remote members differ from what it was told."""
        out = []
        for peer_id, told in view.told.items():
            if peer_id in view.pending:
                continue
            for other, public in view.members.items():
                if other not in told:
                    out.append((room, peer_id, {"type": "peer-joined", **public}))
            for other, public in told.items():
                if other not in view.members:
                    out.append((room, peer_id, {"type": "peer-left", **public}))
            view.told[peer_id] = dict(view.members)
        return out

    async def _send(self, sends: list[tuple[str, str, dict]]) -> None:
        for room, to, message in sends:
            with contextlib.suppress(Exception):
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
                                await self._deliver(data["room"], data["to"], data["message"])
                            else:
                                await self._send(self._apply_event(data))
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
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self.interval)
            self._kick.clear()
            try:
                await self._heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("signaling presence heartbeat failed", exc_info=True)

    async def _heartbeat(self) -> None:
        """Refresh our peers, sweep the expired peers of other nodes, and reconcile every view."""
        work = [
            (room, view, [e for p, e in view.local.items() if p not in view.pending])
            for room, view in self._views.items()
        ]
        work = [w for w in work if w[2]]
        for start in range(0, len(work), PIPELINE_CHUNK):
            chunk = work[start : start + PIPELINE_CHUNK]
            answers = await self._pipeline(
                [
                    (
                        "heartbeat",
                        room,
                        (self.node, self.ttl_ms, self.key_ttl_ms, self._events, room, *entries),
                    )
                    for room, _, entries in chunk
                ]
            )
            for (room, view, _), answer in zip(chunk, answers, strict=False):
                if self._views.get(room) is view:
                    await self._send(self._apply_snapshot(room, view, *self._decode(answer)))

    # -- Redis ---------------------------------------------------------------------------------

    async def _run(self, script: str, room: str, *args):
        return await self._lane.run(self._scripts[script], [self._room_prefix + room], list(args))

    async def _pipeline(self, calls: list[tuple[str, str, tuple]]) -> list:
        for attempt in (1, 2):
            async with self._redis.pipeline(transaction=False) as pipe:
                for script, room, args in calls:
                    pipe.evalsha(self._scripts[script].sha, 1, self._room_prefix + room, *args)
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
        return ProtocolError("fabric_unavailable", "Calls are briefly unavailable; try again")


async def _undelivered(room: str, peer_id: str, message: dict) -> bool:
    return False
