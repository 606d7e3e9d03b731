"""Errors of organization and user management."""

from api.errors import Conflict, InvalidInput


class NameTaken(Conflict):
    code, title = "name_taken", "That name is already in use"


class RoleNotGrantable(InvalidInput):
    code, title = "role_not_grantable", "That role cannot be granted here"
