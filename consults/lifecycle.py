"""The consult lifecycle, in one place: which event moves a consult from which status to which, what
the move stamps, and what it sets off. Nothing else writes a consult's status (tests/consults/
test_lifecycle.py pins it). This module decides without I/O; consults.transitions stages what a
move sets off in the caller's transaction.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum

from sqlalchemy import ColumnElement, Update, func, update
from sqlmodel import col

from consults.exceptions import InvalidTransition
from consults.models import Consult
from consults.models import Status as S

# statuses in which escalation still has work to do
ROUTING = frozenset({S.requested, S.offered, S.unassigned})
# statuses in which a specialist holds the consult (counts toward their load)
HELD = frozenset({S.accepted, S.in_session})
# statuses nothing leaves: the thread is read-only, nobody more is invited
CLOSED = frozenset({S.completed, S.cancelled})


class Event(StrEnum):
    offer = "offer"  # escalation offers it to the next batch of specialists
    exhaust = "exhaust"  # nobody is left to offer it to: it waits in the coordinators' queue
    accept = "accept"  # an offered specialist takes it
    assign = "assign"  # a coordinator assigns or reassigns it by hand
    join_call = "join_call"  # someone joins one of its calls
    complete = "complete"  # the assignee closes it with an outcome
    cancel = "cancel"  # the requester or a coordinator calls it off


class Announce(Enum):
    never = "never"
    on_move = "on_move"  # only when the status changes (another batch at the same level is no news)
    always = "always"  # even if it stays put (a reassignment changes who holds it)


@dataclass(frozen=True)
class Rule:
    sources: frozenset[S]
    target: S
    stamps: tuple[str, ...] = ()  # milestones set to the moment of the move unless reached before
    withdraw: str | None = None  # its pending offers are withdrawn, their holders told this reason
    announce: Announce = Announce.always
    alert: bool = False  # the coordinators' queue hears of it as needing a human
    end_calls: str | None = None  # its calls end for everyone, for this reason
    audit: str | None = None  # the action recorded for whoever made the move


RULES: dict[Event, Rule] = {
    Event.offer: Rule(ROUTING, S.offered, ("first_offered_at",), announce=Announce.on_move),
    Event.exhaust: Rule(ROUTING, S.unassigned, announce=Announce.on_move, alert=True),
    Event.accept: Rule(
        frozenset({S.offered}), S.accepted, ("accepted_at",), withdraw="taken", audit="consult.accept"
    ),
    Event.assign: Rule(
        ROUTING | HELD, S.accepted, ("accepted_at",), withdraw="assigned", audit="consult.assign"
    ),
    # Joining a call already in session moves nothing; calls.joined asks first.
    Event.join_call: Rule(frozenset({S.accepted}), S.in_session, announce=Announce.never),
    Event.complete: Rule(
        HELD,
        S.completed,
        ("completed_at", "first_response_at"),  # written guidance is a response too
        end_calls="The consult was completed",
        audit="consult.complete",
    ),
    Event.cancel: Rule(
        ROUTING | HELD,
        S.cancelled,
        ("cancelled_at",),
        withdraw="cancelled",
        end_calls="The consult was cancelled",
        audit="consult.cancel",
    ),
}


@dataclass(frozen=True)
class Change:
    """A move made in memory or in the database, and what it still sets off (consults.transitions)."""

    consult: Consult
    event: Event
    source: S
    at: datetime
    released: tuple[uuid.UUID, uuid.UUID] | None = None  # (user, org) who held it and no longer do

    @property
    def rule(self) -> Rule:
        return RULES[self.event]

    @property
    def moved(self) -> bool:
        return self.source != self.rule.target


def allows(status: S, event: Event) -> bool:
    """May a consult in `status` undergo `event`?"""
    return status in RULES[event].sources


def require(consult: Consult, event: Event) -> None:
    """Refuse (409, with the current status) an event the consult's status does not allow."""
    if not allows(consult.status, event):
        raise InvalidTransition(consult.status)


def transition(
    consult: Consult,
    event: Event,
    *,
    at: datetime,
    level: int | None = None,
    assignee: tuple[uuid.UUID, uuid.UUID] | None = None,
    outcome: tuple[str, str] | None = None,
) -> Change:
    """Move a consult loaded (and locked) by the caller: status, stamps, and who holds it now."""
    require(consult, event)
    source, held_by = consult.status, _holder(consult)
    consult.status, consult.updated_at = RULES[event].target, at
    for mark in RULES[event].stamps:
        if getattr(consult, mark) is None:
            setattr(consult, mark, at)
    if level is not None:
        consult.level = level
    if assignee is not None:
        consult.assigned_to, consult.assigned_org_id = assignee
    if outcome is not None:
        consult.recommendation, consult.disposition = outcome
    still_theirs = held_by is not None and consult.status in HELD and consult.assigned_to == held_by[0]
    return Change(consult, event, source, at, None if still_theirs else held_by)


def guarded(
    consult_id: uuid.UUID,
    event: Event,
    *,
    at: datetime,
    assignee: tuple[uuid.UUID, uuid.UUID],
    guard: ColumnElement[bool],
) -> Update:
    """The same move as one conditional UPDATE, for a race that the row itself decides (whoever's
    statement changes it won); the status condition is the table's, `guard` any further one."""
    rule = RULES[event]
    stamps = {mark: func.coalesce(getattr(Consult, mark), at) for mark in rule.stamps}
    return (
        update(Consult)
        .where(col(Consult.id) == consult_id, col(Consult.status).in_(rule.sources), guard)
        .values(
            status=rule.target, assigned_to=assignee[0], assigned_org_id=assignee[1], updated_at=at, **stamps
        )
        .execution_options(synchronize_session=False)
    )


def _holder(consult: Consult) -> tuple[uuid.UUID, uuid.UUID] | None:
    if consult.status in HELD and consult.assigned_to is not None and consult.assigned_org_id is not None:
        return consult.assigned_to, consult.assigned_org_id
    return None
