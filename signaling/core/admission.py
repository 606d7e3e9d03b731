"""Join admission as decisions: what a checked call token grants, what the ledger answered, which
close orders a join may have raced, and whether the database must have the last word.

The server (signaling.edge.seating) does the awaiting (the fabric's admission step, the database
query); every yes or no it acts on is computed here.
"""

import enum
from dataclasses import dataclass

from signaling.core.messages import ProtocolError

NEVER = float("-inf")


@dataclass(frozen=True, slots=True)
class CallGrant:
    """A call token whose signature and claims were checked (signaling.calls.tokens.check)."""

    user_id: str
    org_id: str
    room: str
    consult_id: str | None  # None for a pre-call echo room
    jti: str
    iat: int
    exp: int
    session_id: str | None = None  # the sign-in that asked for the token: signing out ends its calls
    role: str | None = None  # in the consult (requester, assignee, an invited role; precall), told to peers
    name: str | None = None  # the user's display name, told to peers


class Verdict(enum.Enum):
    """The call ledger's answer for a token spent for the first time."""

    FRESH = 1  # nothing ended since it was issued: admit
    RECHECK = 2  # the database decides


def check_connections(count: int, limit: int) -> None:
    """too_many_connections when the user already holds `limit` connections on this node; checked
    before the token is spent, so it may be used once one closes."""
    if count >= limit:
        raise ProtocolError("too_many_connections", "Too many signaling connections for this user")


def call_closed() -> ProtocolError:
    return ProtocolError("call_closed", "This consult no longer allows calls for you")


class CloseOrders:
    """When this node last heard a close order per room and per user (monotonic seconds), kept for
    `horizon` seconds: a join that such an order may have raced is checked against the database."""

    __slots__ = ("horizon", "heard")

    def __init__(self, horizon: float) -> None:
        self.horizon = horizon
        self.heard: dict[str, float] = {}  # "room:<room>" / "user:<id>" -> when

    def room_closed(self, room: str, now: float) -> None:
        self.heard["room:" + room] = now

    def user_closed(self, user_id: str, now: float) -> None:
        self.heard["user:" + user_id] = now

    def __contains__(self, key: str) -> bool:
        return key in self.heard

    def since(self, grant: CallGrant, since: float) -> bool:
        """Did an order for the grant's room or user come at or after `since`?"""
        heard = self.heard
        return max(heard.get("room:" + grant.room, NEVER), heard.get("user:" + grant.user_id, NEVER)) >= since

    def quiet(self, grant: CallGrant, now: float) -> bool:
        """No order for the grant's room or user within the horizon: a fresh token may enter at once."""
        return not self.since(grant, now - self.horizon)

    def prune(self, now: float) -> None:
        if self.heard:
            self.heard = {k: t for k, t in self.heard.items() if t > now - self.horizon}


def admitted_at_once(verdict: Verdict, orders: CloseOrders, grant: CallGrant, now: float) -> bool:
    """The ledger said fresh and no close order came for the room or user meanwhile: no database."""
    return verdict is Verdict.FRESH and orders.quiet(grant, now)


def settled(orders: CloseOrders, grant: CallGrant, asked: float) -> bool:
    """The database's yes, asked at `asked`, holds unless a close order came since (then ask again)."""
    return not orders.since(grant, asked)
