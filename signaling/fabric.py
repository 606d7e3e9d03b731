"""How a node reaches peers on other nodes. The single-node fabric knows none; the Redis one
(signaling.redis_fabric) shares room membership and forwards messages between nodes."""

from collections.abc import Awaitable, Callable

from signaling.ledger import LocalLedger, Verdict
from signaling.tokens import CallGrant

Deliver = Callable[[str, str, dict], Awaitable[bool]]  # (room, peer_id, message) -> delivered here?


class LocalFabric:
    """One process: every peer is local, so there is nothing to share or forward."""

    def __init__(self, ledger: LocalLedger) -> None:
        self.ledger = ledger

    async def start(self, deliver: Deliver) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def admit(self, grant: CallGrant) -> tuple[Verdict, list[dict]]:
        """Spend a call token, say whether the database must decide, and name the room's remote peers."""
        return await self.ledger.admit(grant), []

    async def remote_peers(self, room: str) -> list[dict]:
        return []

    async def joined(self, room: str, peer: dict, known: list[dict] | None = None) -> None:
        """A local peer joined the room, having been told `known` (what remote_peers answered)."""
        return None

    async def left(self, room: str, peer: dict) -> None:
        return None

    async def forward(self, room: str, to: str, message: dict) -> bool:
        return False

    async def broadcast(self, room: str, message: dict) -> None:
        return None
