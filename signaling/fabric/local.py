"""How a node reaches peers on other nodes. The single-node fabric knows none; the Redis one
(signaling.fabric.redis_fabric) shares room membership and forwards messages between nodes."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from signaling.core.admission import CallGrant, Verdict
from signaling.fabric.ledger import LocalLedger

Deliver = Callable[[str, str, dict], Awaitable[bool]]  # (room, peer_id, message) -> delivered here?


@dataclass(frozen=True, slots=True)
class Admission:
    """A spent call token: whether the database must decide, the room's remote peers, and, if the
    peer already entered the room for the other nodes, what the fabric needs to finish its join."""

    verdict: Verdict
    remote: list[dict]
    entered: Any = None  # passed back to `joined`; the join's undo is `left`


class LocalFabric:
    """One process: every peer is local, so there is nothing to share or forward."""

    def __init__(self, ledger: LocalLedger) -> None:
        self.ledger = ledger

    async def start(self, deliver: Deliver) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def admit(self, grant: CallGrant, peer: dict, *, max_peers: int, enter: bool) -> Admission:
        """Spend a call token unless the room is full, say whether the database must decide, and name
        the room's remote peers; with `enter`, a fresh token's peer enters the room in the same step."""
        return Admission(
            await self.ledger.admit(grant), []
        )  # its peers are all local: the server counts them

    async def reseat(self, room: str, peer: dict, *, max_peers: int) -> list[dict]:
        """A peer shown reconnecting takes a place again. Its room's peers are all local, and
        Rooms.resume counts them and seats it with no await in between: that step alone is atomic."""
        return []

    async def remote_peers(self, room: str) -> list[dict]:
        return []

    async def joined(
        self, room: str, peer: dict, known: list[dict] | None = None, entered: Any = None
    ) -> None:
        """A local peer joined the room, having been told `known` (the remote peers when it asked)."""
        return None

    async def left(self, room: str, peer: dict) -> None:
        return None

    async def restate(self, room: str, peer_id: str, state: str) -> None:
        """A local peer's link changed state (`reconnecting`, `connected`): its presence says so."""
        return None

    async def forward(self, room: str, to: str, message: dict) -> bool:
        return False
