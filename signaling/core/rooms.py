"""Rooms and peers of one node, as pure state: time comes in as an argument, effects go out as
values (`Send`), and nothing here touches a socket, Redis or the clock."""

import secrets
from dataclasses import dataclass, field

from signaling.core.messages import ProtocolError, Relay, Wire


def new_peer_id() -> str:
    return secrets.token_hex(8)


def room_full(max_peers: int) -> ProtocolError:
    return ProtocolError("room_full", f"A call holds at most {max_peers} peers")


@dataclass(slots=True)
class Peer:
    peer_id: str
    user_id: str
    org_id: str
    room: str
    secret: str
    consult_id: str | None = None  # the consult whose call this is (None: a pre-call echo room)
    session_id: str | None = None  # the sign-in its call token came from
    role: str | None = None  # in the consult's call (see CallGrant)
    name: str | None = None
    connected: bool = True
    detached_at: float | None = None
    buffer: list[Wire] = field(
        default_factory=list
    )  # held for the peer while it is away (a deque costs 10x empty)

    def public(self) -> dict[str, str]:
        """What the room's other peers are told of this one: enough to lay out the call."""
        return described(self.peer_id, self.user_id, self.role, self.name)

    def listed(self) -> Wire:
        """As a newcomer's `joined.peers` lists it: with the state of its link."""
        return {**self.public(), "state": "connected" if self.connected else "reconnecting"}


PUBLIC_FIELDS = ("peer_id", "user_id", "role", "name")  # what others are told of a peer, on any node


def described(peer_id: str, user_id: str, role: str | None, name: str | None) -> dict[str, str]:
    """A peer as others are told of it; role and name whenever its call token gave them (all tokens
    issued now do; in-process peers may go without)."""
    public = {"peer_id": peer_id, "user_id": user_id}
    if role is not None:
        public["role"] = role
    if name is not None:
        public["name"] = name
    return public


def connected(remote: list[Wire]) -> int:
    """How many of the remote peers count toward the room's limit: a reconnecting one does not."""
    return sum(1 for p in remote if p.get("state") != "reconnecting")


def held(to: str, kind: str) -> Wire:
    """To a sender: what it sent to `to` is held, as `to` is reconnecting."""
    return {"type": "held", "to": to, "kind": kind, "state": "reconnecting"}


@dataclass(frozen=True, slots=True)
class Send:
    peer_id: str
    message: Wire


@dataclass(frozen=True, slots=True)
class Limits:
    max_peers: int = 6
    grace_seconds: float = 30.0
    buffer_messages: int = 256


class Rooms:
    """Join, relay, detach, resume, leave and expire; `remote` counts are supplied by the caller."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.rooms: dict[str, dict[str, Peer]] = {}
        self._by_secret: dict[str, Peer] = {}
        # peer id -> what other nodes sent it while it was being admitted (it is in the room for
        # them from the admission's step on, here only once seated)
        self.arriving: dict[str, list[Wire]] = {}

    def peers(self, room: str) -> list[Peer]:
        return list(self.rooms.get(room, {}).values())

    def others(self, peer: Peer, remote: list[Wire]) -> list[Wire]:
        """Who a peer is told is in its room, with each one's state: the room's other local peers,
        then the remote ones."""
        local = [p.listed() for p in self.rooms.get(peer.room, {}).values() if p is not peer]
        return local + [{**p, "state": p.get("state", "connected")} for p in remote]

    def check_space(self, room: str, remote_count: int = 0) -> None:
        """room_full if the room has no place left: its connected peers, here and (`remote_count`)
        on other nodes, fill it; a reconnecting peer holds no place."""
        here = sum(1 for p in self.rooms.get(room, {}).values() if p.connected)
        if here + remote_count >= self.limits.max_peers:
            raise room_full(self.limits.max_peers)

    def join(
        self,
        *,
        room: str,
        user_id: str,
        org_id: str,
        remote_count: int = 0,
        peer_id: str | None = None,
        role: str | None = None,
        name: str | None = None,
    ) -> tuple[Peer, list[Send]]:
        """A new peer in the room (with the id it was admitted under); the others hear `peer-joined`."""
        self.check_space(room, remote_count)
        present = self.rooms.setdefault(room, {})
        peer = Peer(
            peer_id or new_peer_id(), user_id, org_id, room, secrets.token_urlsafe(24), role=role, name=name
        )
        announce = [
            Send(p.peer_id, {"type": "peer-joined", **peer.public()}) for p in present.values() if p.connected
        ]
        present[peer.peer_id] = peer
        self._by_secret[peer.secret] = peer
        return peer, announce

    def expect(self, peer_id: str) -> None:
        """A peer is being admitted: hold what other nodes send it until it is seated."""
        self.arriving[peer_id] = []

    def arrived(self, peer_id: str) -> list[Wire]:
        """Its admission is over, either way: what was held for it, in order (its backlog)."""
        return self.arriving.pop(peer_id)

    def receive(self, room: str, to: str, message: Wire) -> tuple[list[Send], bool]:
        """A message from another node for `to`: the sends, and whether `to` is this node's (held for
        it while it is away or being admitted; dropped past the buffer's limit). Held for a
        reconnecting peer, a `held` notice goes back to its sender (on another node: the caller
        forwards it)."""
        target = self.local(room, to)
        if target is None:
            waiting = self.arriving.get(to)
            if waiting is not None and len(waiting) < self.limits.buffer_messages:
                waiting.append(message)
            return [], waiting is not None
        try:
            sends = self.deliver(target, message)
        except ProtocolError:
            return [], True
        sender = message.get("from")
        if not target.connected and isinstance(sender, str):
            sends.append(Send(sender, held(target.peer_id, str(message.get("type")))))
        return sends, True

    def relay(self, sender: Peer, msg: Relay) -> list[Send]:
        """Forward to a local peer of the same room; [] if not local. Held while it is reconnecting,
        and the sender is told so (`held`)."""
        target = self.rooms.get(sender.room, {}).get(msg.to)
        if target is None or target is sender:
            return []
        sends = self.deliver(target, {"type": msg.kind, "from": sender.peer_id, **msg.body})
        if not target.connected:
            sends.append(Send(sender.peer_id, held(target.peer_id, msg.kind)))
        return sends

    def deliver(self, target: Peer, message: Wire) -> list[Send]:
        """To the peer now, or into its buffer while it is away or has a backlog to be sent first."""
        if target.connected and not target.buffer:
            return [Send(target.peer_id, message)]
        if len(target.buffer) >= self.limits.buffer_messages:
            raise ProtocolError("peer_buffer_full", "The peer is reconnecting and its buffer is full")
        target.buffer.append(message)
        return []

    def tell_others(self, peer: Peer, message: Wire) -> list[Send]:
        """`message` to the room's other connected peers (a state change is news only to those listening)."""
        return [
            Send(p.peer_id, message)
            for p in self.rooms.get(peer.room, {}).values()
            if p is not peer and p.connected and not p.buffer
        ]

    def local(self, room: str, peer_id: str) -> Peer | None:
        return self.rooms.get(room, {}).get(peer_id)

    def detach(self, peer: Peer, now: float) -> None:
        """The socket is gone; the peer keeps its place for the grace period."""
        peer.connected, peer.detached_at = False, now

    def find(self, secret: str) -> Peer | None:
        """The peer a resume secret names, without resuming it."""
        return self._by_secret.get(secret)

    def resume(self, secret: str, now: float, remote_count: int = 0) -> tuple[Peer, list[Wire]]:
        """Reclaim a peer with its secret (taking over a socket the server still thinks is open);
        it gets what was buffered meanwhile, in order. A reconnecting peer held no place: if the
        room filled meanwhile (`remote_count` connected on other nodes), room_full (the caller
        makes it leave)."""
        peer = self._by_secret.get(secret)
        if peer is None or self.lapsed(peer, now):
            raise ProtocolError("resume_failed", "Nothing to resume: join again with a new call token")
        if not peer.connected:
            self.check_space(peer.room, remote_count)
        peer.connected, peer.detached_at = True, None
        queued, peer.buffer = peer.buffer, []
        return peer, queued

    def lapsed(self, peer: Peer, now: float) -> bool:
        """Its link was lost longer ago than the grace: it can no longer resume (the sweep ends it)."""
        return peer.detached_at is not None and now - peer.detached_at > self.limits.grace_seconds

    def leave(self, peer: Peer) -> list[Send]:
        """Remove the peer; the others hear `peer-left`."""
        present = self.rooms.get(peer.room, {})
        if present.pop(peer.peer_id, None) is None:
            return []
        self._by_secret.pop(peer.secret, None)
        if not present:
            del self.rooms[peer.room]
        return [
            Send(p.peer_id, {"type": "peer-left", **peer.public()}) for p in present.values() if p.connected
        ]

    def expired(self, now: float) -> list[Peer]:
        """Detached peers whose grace period is over (the caller makes them leave)."""
        return [
            p
            for room in self.rooms.values()
            for p in room.values()
            if not p.connected and self.lapsed(p, now)
        ]
