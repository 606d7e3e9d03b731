"""Who is calling, from where: passed explicitly into every service call."""

import uuid
from dataclasses import dataclass, field, replace

from auth.roles import Perm


@dataclass(frozen=True)
class Actor:
    kind: str  # "user", "client" or "anonymous"
    id: uuid.UUID | None = None
    org_id: uuid.UUID | None = None
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

    def with_request(self, request_id: str | None, client_addr: str | None) -> "Actor":
        return replace(self, request_id=request_id, client_addr=client_addr)


ANONYMOUS = Actor(kind="anonymous")
