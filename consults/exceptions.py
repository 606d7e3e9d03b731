"""Errors of the consult engine."""

from api.errors import Conflict, InvalidInput


class InvalidTransition(Conflict):
    code, title = "invalid_transition", "The consult is not in a state that allows this"

    def __init__(self, current: str, detail: str | None = None) -> None:
        super().__init__(detail or f"The consult is {current}", current_status=current)


class IdempotencyMismatch(InvalidInput):
    code, title = "idempotency_key_reused", "That Idempotency-Key was used with a different body"


class IdempotencyInFlight(Conflict):
    code, title = "idempotency_in_flight", "A request with that Idempotency-Key is still being processed"


class NotEligible(InvalidInput):
    code, title = "not_eligible", "That specialist cannot take this consult"


class OverCapacity(Conflict):
    code, title = "over_capacity", "You are at your concurrent consult limit"


class UnknownMessage(InvalidInput):
    code, title = "unknown_message", "No such message in this consult's thread"
