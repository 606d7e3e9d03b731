"""Wire shapes of organizations and users."""

import uuid
from datetime import datetime

from pydantic import Field

from api.schemas import Bool, Out, Strict
from orgs.models import OrgKind

USERNAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"
GRANTABLE = ("clinician", "specialist", "coordinator", "org_admin")


class OrgIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: OrgKind


class OrgOut(Out):
    id: uuid.UUID
    name: str
    kind: OrgKind
    created_at: datetime


class UserIn(Strict):
    username: str = Field(pattern=USERNAME)
    password: str | None = Field(default=None, min_length=10, max_length=1024)
    display_name: str = Field(default="", max_length=200)
    roles: list[str] = Field(default_factory=list, max_length=5)


class UserPatch(Strict):
    display_name: str | None = Field(default=None, max_length=200)
    password: str | None = Field(default=None, min_length=10, max_length=1024)
    roles: list[str] | None = Field(default=None, max_length=5)
    is_active: Bool | None = None


class UserOut(Out):
    id: uuid.UUID
    org_id: uuid.UUID
    username: str
    display_name: str
    roles: list[str]
    is_active: bool
    created_at: datetime
