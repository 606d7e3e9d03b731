"""Wire shapes of sign-in and identity."""

import uuid

from pydantic import BaseModel, Field

from api.schemas import Bool, Out, Strict
from auth.roles import ClientScope


class LoginIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    org_id: uuid.UUID | None = Field(
        default=None,
        description="The user's organization: needed only when the username is also another org's",
    )


class RefreshIn(Strict):
    refresh_token: str = Field(min_length=1, max_length=8192)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class ClientToken(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    scope: str


class MeOut(BaseModel):
    kind: str
    id: uuid.UUID
    org_id: uuid.UUID
    username: str | None = None
    display_name: str | None = None
    roles: list[str]
    permissions: list[str]


class ClientIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[ClientScope] = Field(default_factory=list, max_length=20)


class ClientPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    is_active: Bool | None = Field(
        default=None, description="false refuses its secret and its tokens at once"
    )


class ClientOut(Out):
    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    scopes: list[str]
    is_active: bool


class ClientCreated(ClientOut):
    client_secret: str


class IdpIn(Strict):
    issuer: str = Field(min_length=1, max_length=500)
    audience: str = Field(min_length=1, max_length=500)
    jwks: dict


class IdpOut(Out):
    id: uuid.UUID
    org_id: uuid.UUID
    issuer: str
    audience: str


class IdentityLinkIn(Strict):
    user_id: uuid.UUID
    subject: str = Field(min_length=1, max_length=255)


class IdentityLinkOut(Out):
    id: uuid.UUID
    idp_id: uuid.UUID
    user_id: uuid.UUID
    subject: str
