"""Errors of organization and user management."""

from api.errors import Conflict, Forbidden, InvalidInput


class NameTaken(Conflict):
    code, title = "name_taken", "That name is already in use"


class UsernameTaken(Conflict):
    """Only ever about the caller's own org: usernames are unique per org."""

    code, title = "username_taken", "That username is already in use in this organization"


class RoleNotGrantable(InvalidInput):
    code, title = "role_not_grantable", "That role cannot be granted here"


class FirstAdminOnly(Forbidden):
    """The platform admin bootstraps an org, then its own admins manage it."""

    code, title = "first_admin_only", "The platform admin only creates an organization's first admin"
    denial = True
