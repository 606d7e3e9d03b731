"""Roles, the permissions they grant, and the scopes an integration client may hold."""

from enum import StrEnum


class Role(StrEnum):
    clinician = "clinician"
    specialist = "specialist"
    coordinator = "coordinator"
    org_admin = "org_admin"
    platform_admin = "platform_admin"


class Perm(StrEnum):
    orgs_create = "orgs:create"
    users_read = "users:read"
    users_manage = "users:manage"
    agreements_read = "agreements:read"
    agreements_manage = "agreements:manage"
    identity_manage = "identity:manage"
    audit_read = "audit:read"


ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.clinician: frozenset(),
    Role.specialist: frozenset(),
    Role.coordinator: frozenset({Perm.users_read, Perm.agreements_read}),
    Role.org_admin: frozenset({Perm.users_read, Perm.users_manage, Perm.agreements_read,
                               Perm.agreements_manage, Perm.identity_manage, Perm.audit_read}),
    Role.platform_admin: frozenset({Perm.orgs_create, Perm.users_read, Perm.users_manage, Perm.audit_read}),
}

# What an integration client may be granted: reading and acting for its org, never administering it.
CLIENT_SCOPES: frozenset[Perm] = frozenset({Perm.users_read, Perm.agreements_read, Perm.audit_read})


def perms_for_roles(roles: list[str]) -> frozenset[Perm]:
    out: set[Perm] = set()
    for r in roles:
        out |= ROLE_PERMS.get(Role(r), frozenset()) if r in Role.__members__ else frozenset()
    return frozenset(out)
