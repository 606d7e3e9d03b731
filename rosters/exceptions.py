"""Errors of roster handling."""

from api.errors import InvalidInput


class NotASpecialist(InvalidInput):
    code, title = "not_a_specialist", "That user is not a specialist of this organization"


class NoProfile(InvalidInput):
    code, title = "no_profile", "Set up your specialist profile first"
