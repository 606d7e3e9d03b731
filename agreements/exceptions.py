"""Errors of agreement handling."""

from api.errors import Conflict, InvalidInput


class InvalidTransition(Conflict):
    code, title = "invalid_transition", "The agreement is not in a state that allows this"

    def __init__(self, current: str, action: str) -> None:
        super().__init__(f"Cannot {action} an agreement that is {current}", current_status=current)


class NotYourSide(Conflict):
    code, title = "wrong_party", "The other organization must do this"


class NotAParty(InvalidInput):
    code, title = "not_a_party", "Your organization must be one of the two parties"
