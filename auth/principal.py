"""Who is calling, from where: passed explicitly into every service call."""

import uuid
from dataclasses import dataclass, field, replace
from typing import Self

from auth.roles import Perm


@dataclass(frozen=True)
class Actor:
    """An authenticated caller (a user or an integration client): always someone of some organization."""

    kind: str  # "user" or "client"
    id: uuid.UUID
    org_id: uuid.UUID
    roles: frozenset[str] = field(default_factory=frozenset)
    perms: frozenset[Perm] = field(default_factory=frozenset)
    session_id: uuid.UUID | None = None
    request_id: str | None = None
    client_addr: str | None = None

    def can(self, perm: Perm) -> bool:
        return perm in self.perms

    @property
    def is_platform_admin(self) -> bool:
        return "platform_admin" in self.roles

    def with_request(self, request_id: str | None, client_addr: str | None) -> Self:
        return replace(self, request_id=request_id, client_addr=client_addr)


@dataclass(frozen=True)
class Anonymous:
    """A caller not (yet) signed in, as the sign-in routes and the audit of refusals see them."""

    request_id: str | None = None
    client_addr: str | None = None
    # What the audit trail reads of any caller (audit.service.Actor): nobody, of no organization.
    kind: str = "anonymous"
    id: None = None
    org_id: None = None
    is_platform_admin: bool = False

    def with_request(self, request_id: str | None, client_addr: str | None) -> Self:
        return replace(self, request_id=request_id, client_addr=client_addr)


ANONYMOUS = Anonymous()
Caller = Actor | Anonymous  # whoever sent the request, signed in or not
