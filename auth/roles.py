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
    rosters_read = "rosters:read"
    rosters_manage = "rosters:manage"
    availability_set = "availability:set"
    consults_create = "consults:create"
    consults_queue = "consults:queue"
    consults_respond = "consults:respond"
    stats_read = "stats:read"
    policy_manage = "policy:manage"
    webhooks_manage = "webhooks:manage"


ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.clinician: frozenset({Perm.consults_create, Perm.rosters_read}),
    Role.specialist: frozenset({Perm.availability_set, Perm.consults_respond, Perm.rosters_read}),
    Role.coordinator: frozenset(
        {
            Perm.users_read,
            Perm.agreements_read,
            Perm.rosters_read,
            Perm.rosters_manage,
            Perm.consults_queue,
            Perm.stats_read,
            Perm.policy_manage,
        }
    ),
    Role.org_admin: frozenset(
        {
            Perm.users_read,
            Perm.users_manage,
            Perm.agreements_read,
            Perm.rosters_read,
            Perm.agreements_manage,
            Perm.identity_manage,
            Perm.audit_read,
            Perm.stats_read,
            Perm.policy_manage,
            Perm.webhooks_manage,
        }
    ),
    # The operator makes organizations and their first admin (orgs.service), nothing inside them.
    Role.platform_admin: frozenset({Perm.orgs_create, Perm.audit_read}),
}

# What an integration client may be granted: reading and acting for its org, never administering it.
# consults:create lets it request consults on behalf of a clinician of its org (consults.service).
CLIENT_SCOPES: frozenset[Perm] = frozenset(
    {
        Perm.consults_create,
        Perm.users_read,
        Perm.agreements_read,
        Perm.audit_read,
        Perm.rosters_read,
        Perm.consults_queue,
        Perm.stats_read,
    }
)


def perms_for_roles(roles: list[str]) -> frozenset[Perm]:
    out: set[Perm] = set()
    for r in roles:
        out |= ROLE_PERMS.get(Role(r), frozenset()) if r in Role.__members__ else frozenset()
    return frozenset(out)


# The same, as the enum the OpenAPI document lists for a client's scopes.
# mypy learns a functional enum's members only from a literal; these come from CLIENT_SCOPES.
ClientScope = StrEnum("ClientScope", {p.name: p.value for p in sorted(CLIENT_SCOPES)})  # type: ignore[misc]
