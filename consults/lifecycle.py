"""The consult lifecycle, in one place: which status may follow which."""

from consults.models import Status as S

# target status -> the statuses it may be reached from
ALLOWED_FROM: dict[S, frozenset[S]] = {
    S.offered: frozenset({S.requested, S.offered, S.unassigned}),
    S.accepted: frozenset({S.requested, S.offered, S.unassigned, S.accepted, S.in_session}),
    S.in_session: frozenset({S.accepted, S.in_session}),
    S.completed: frozenset({S.accepted, S.in_session}),
    S.cancelled: frozenset({S.requested, S.offered, S.accepted, S.in_session, S.unassigned}),
    S.unassigned: frozenset({S.requested, S.offered, S.unassigned}),
}

# statuses in which escalation still has work to do
ROUTING = frozenset({S.requested, S.offered, S.unassigned})
# statuses in which a specialist holds the consult (counts toward their load)
HELD = frozenset({S.accepted, S.in_session})
