"""What a node believes about the remote members of its rooms, and what each local peer was told.

The Redis fabric (signaling.fabric.redis_fabric) feeds in what Redis says, as values: events heard
on Pub/Sub and the snapshots its scripts answer, each with the room's `seq`. They are applied
last-writer-wins by `seq`, and each local peer is then told the difference (peer-joined /
peer-left) through the sends returned: no duplicates, and a lost event is repaired by the next
snapshot. Time comes in as an argument (monotonic seconds).
"""

import json
from dataclasses import dataclass, field

from signaling.core.messages import Wire
from signaling.core.rooms import PUBLIC_FIELDS

Sends = list[tuple[str, str, Wire]]  # (room, local peer id, message)


@dataclass(slots=True)
class View:
    """One room, as this node sees it: remote members (versioned by seq) and what each local peer was told."""

    members: dict[str, Wire] = field(default_factory=dict)  # remote peer id -> its Peer.public()
    versions: dict[str, int] = field(default_factory=dict)  # remote peer id -> seq of the last event applied
    floor: int = 0  # seq of the newest snapshot applied: events at or below it are already reflected
    local: dict[str, str] = field(default_factory=dict)  # local peer id -> its entry (json, with this node)
    told: dict[str, dict[str, Wire]] = field(default_factory=dict)  # local peer id -> remote peers it knows
    pending: dict[str, None] = field(default_factory=dict)  # local peers whose join script has not answered
    # yet (a dict: 64 bytes empty against a set's 216, and there is a view per room)
    missing: dict[str, float] = field(default_factory=dict)  # members a snapshot lacked, since (monotonic)


def public(entry: Wire) -> Wire:
    """What peers are told of a member: the Peer.public() fields of its entry, not the fabric's own
    (its node, when its presence expires)."""
    return {k: entry[k] for k in PUBLIC_FIELDS if k in entry}


def listed(entry: Wire) -> Wire:
    """A member as `joined.peers` lists it: public, with the state of its link when it is reconnecting."""
    return public(entry) | ({"state": entry["state"]} if "state" in entry else {})


class Views:
    """The views of the rooms node `node` has local peers in. A member that snapshots lack, with no
    event saying it left, is dropped once it has been absent `absent_after` seconds."""

    def __init__(self, node: str, *, absent_after: float) -> None:
        self.node, self.absent_after = node, absent_after
        self.rooms: dict[str, View] = {}

    def enter(self, room: str, peer: Wire, told: list[Wire] | None = None) -> str:
        """Count a joining local peer in its room's view (having been told `told`); events for the
        room are kept from now on, and none reach the peer until its join is done. Returns its entry."""
        view = self.rooms.setdefault(room, View())
        peer_id = peer["peer_id"]
        entry = json.dumps({**peer, "node": self.node}, separators=(",", ":"))
        view.local[peer_id] = entry
        view.told[peer_id] = {p["peer_id"]: public(p) for p in told or []}
        view.pending[peer_id] = None
        return entry

    def unannounced(self, room: str, peer_id: str) -> None:
        """The peer's join did not reach Redis: it hears events now, and the next heartbeat enters it."""
        view = self.rooms.get(room)
        if view is not None:
            view.pending.pop(peer_id, None)

    def joined(
        self, room: str, peer_id: str, told: list[Wire], seq: int, entries: list[Wire], now: float
    ) -> Sends | None:
        """The peer's join is done, with the room's snapshot at `seq`; None if it left meanwhile."""
        view = self.rooms.get(room)
        if view is None or peer_id not in view.local:
            return None
        view.told[peer_id] = {p["peer_id"]: public(p) for p in told}
        view.pending.pop(peer_id, None)
        return self.snapshot(room, view, seq, entries, now)

    def restate(self, room: str, peer_id: str, state: str) -> list[str] | None:
        """A local peer's link is `reconnecting` or `connected` again: its entry says so from now on.
        Returns the room's entries to refresh at once, or None while its join is not done."""
        view = self.rooms.get(room)
        if view is None or peer_id not in view.local or peer_id in view.pending:
            return None
        entry = {k: v for k, v in json.loads(view.local[peer_id]).items() if k != "state"}
        if state == "reconnecting":
            entry["state"] = state
        view.local[peer_id] = json.dumps(entry, separators=(",", ":"))
        return [e for p, e in view.local.items() if p not in view.pending]

    def forget(self, room: str, peer_id: str) -> None:
        """A local peer left (or never got in); a room without local peers has no view."""
        view = self.rooms.get(room)
        if view is not None:
            view.local.pop(peer_id, None)
            view.told.pop(peer_id, None)
            view.pending.pop(peer_id, None)
            if not view.local:
                del self.rooms[room]

    def refreshing(self) -> list[tuple[str, View, list[str]]]:
        """(room, view, entries) of every room with local peers whose join is done: what a heartbeat refreshes."""
        work = [
            (room, view, [e for p, e in view.local.items() if p not in view.pending])
            for room, view in self.rooms.items()
        ]
        return [w for w in work if w[2]]

    def event(self, event: Wire) -> Sends:
        """A membership event heard from Redis ({room, seq, event, peer})."""
        room = event.get("room")
        if not isinstance(room, str) or (view := self.rooms.get(room)) is None:
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
            view.members[peer_id] = public(entry)
        else:
            view.members.pop(peer_id, None)
        return sync(room, view)

    def snapshot(self, room: str, view: View, seq: int, entries: list[Wire], now: float) -> Sends:
        """Bring the view up to a snapshot (the membership at `seq`), unless the room's view was
        replaced meanwhile. A member the snapshot lacks, with no event saying it left, is dropped
        only once absent `absent_after`: after Redis loses its data (a restart, a failover) the
        members' nodes put them back first."""
        if self.rooms.get(room) is not view:
            return []
        if seq < view.floor:
            return sync(room, view)  # older than what we know: nothing to learn
        present = {e["peer_id"]: public(e) for e in entries}
        for peer_id in set(view.members) | set(present):
            if view.versions.get(peer_id, 0) >= seq:
                continue  # an event newer than the snapshot decided this one
            if peer_id in present:
                view.members[peer_id] = present[peer_id]
                view.missing.pop(peer_id, None)
            elif now - view.missing.setdefault(peer_id, now) >= self.absent_after:
                # Absent from snapshots for a whole presence TTL: gone, by the same rule as expiry. A
                # shorter wait announced spurious departures when Redis lost a room and the other
                # node's heartbeat ran late under load.
                view.members.pop(peer_id, None)
                view.missing.pop(peer_id, None)
        view.floor = seq
        view.versions = {p: v for p, v in view.versions.items() if v > seq}
        return sync(room, view)


def sync(room: str, view: View) -> Sends:
    """Tell each local peer how the remote members differ from what it was told."""
    out = []
    for peer_id, told in view.told.items():
        if peer_id in view.pending:
            continue
        for other, member in view.members.items():
            if other not in told:
                out.append((room, peer_id, {"type": "peer-joined", **member}))
        for other, member in told.items():
            if other not in view.members:
                out.append((room, peer_id, {"type": "peer-left", **member}))
        view.told[peer_id] = dict(view.members)
    return out
