"""Wire shapes of sign-in and identity."""

import uuid

from pydantic import BaseModel, Field, model_validator

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
    """Keys inline (`jwks`) or fetched from the provider (`jwks_uri`, https): exactly one."""

    issuer: str = Field(min_length=1, max_length=500)
    audience: str = Field(min_length=1, max_length=500)
    jwks: dict | None = None
    jwks_uri: str | None = Field(default=None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _one_key_source(self) -> "IdpIn":
        if (self.jwks is None) == (self.jwks_uri is None):
            raise ValueError("give exactly one of jwks and jwks_uri")
        return self


class IdpPatch(Strict):
    """What changes; new keys (either source) replace the old at once, on every node."""

    audience: str | None = Field(default=None, min_length=1, max_length=500)
    jwks: dict | None = None
    jwks_uri: str | None = Field(default=None, min_length=1, max_length=2000)
    is_active: Bool | None = None

    @model_validator(mode="after")
    def _one_key_source(self) -> "IdpPatch":
        if self.jwks is not None and self.jwks_uri is not None:
            raise ValueError("give at most one of jwks and jwks_uri")
        return self


class IdpOut(Out):
    id: uuid.UUID
    org_id: uuid.UUID
    issuer: str
    audience: str
    jwks_uri: str | None
    is_active: bool


class IdentityLinkIn(Strict):
    user_id: uuid.UUID
    subject: str = Field(min_length=1, max_length=255)


class IdentityLinkOut(Out):
    id: uuid.UUID
    idp_id: uuid.UUID
    user_id: uuid.UUID
    subject: str
