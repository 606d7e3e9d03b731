"""Users, sign-in sessions, refresh tokens, external identity providers, integration clients."""

import uuid
from datetime import datetime

from sqlalchemy import JSON, UniqueConstraint
from sqlmodel import Column, Field, SQLModel

from api.models import created_field, id_field, json_list_field


class User(SQLModel, table=True):
    """Usernames are unique within an org only: an org admin creating one learns nothing of other orgs."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("org_id", "username", name="uq_users_org_username"),)
    id: uuid.UUID = id_field()
    org_id: uuid.UUID = Field(foreign_key="organizations.id", index=True)
    username: str = Field(max_length=64, index=True)
    display_name: str = Field(default="", max_length=200)
    password_hash: str | None = None
    roles: list[str] = json_list_field()
    is_active: bool = True
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


class AuthSession(SQLModel, table=True):
    """A sign-in: its refresh tokens form one family, revoked together."""

    __tablename__ = "auth_sessions"
    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)
    created_at: datetime = created_field()
    revoked_at: datetime | None = None
    revoked_reason: str | None = Field(default=None, max_length=40)


class RefreshToken(SQLModel, table=True):
    __tablename__ = "refresh_tokens"
    jti: str = Field(primary_key=True, max_length=64)
    session_id: uuid.UUID = Field(foreign_key="auth_sessions.id", index=True)
    token_hash: str = Field(max_length=64)
    expires_at: datetime
    used_at: datetime | None = None


class IdentityProvider(SQLModel, table=True):
    """An issuer as one org trusts it: another org may register the same issuer, never shadow this one."""

    __tablename__ = "identity_providers"
    __table_args__ = (UniqueConstraint("org_id", "issuer", name="uq_identity_providers_org_issuer"),)
    id: uuid.UUID = id_field()
    org_id: uuid.UUID = Field(foreign_key="organizations.id", index=True)
    issuer: str = Field(max_length=500, index=True)
    audience: str = Field(max_length=500)
    jwks: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    jwks_uri: str | None = Field(default=None, max_length=2000)
    is_active: bool = True
    created_at: datetime = created_field()
    updated_at: datetime | None = None


class ExternalIdentity(SQLModel, table=True):
    __tablename__ = "external_identities"
    __table_args__ = (UniqueConstraint("idp_id", "subject"),)
    id: uuid.UUID = id_field()
    idp_id: uuid.UUID = Field(foreign_key="identity_providers.id", index=True)
    subject: str = Field(max_length=255)
    user_id: uuid.UUID = Field(foreign_key="users.id", index=True)


class IntegrationClient(SQLModel, table=True):
    __tablename__ = "integration_clients"
    id: uuid.UUID = id_field()
    org_id: uuid.UUID = Field(foreign_key="organizations.id", index=True)
    name: str = Field(max_length=200)
    secret_hash: str
    # After a rotation the replaced secret still works until previous_secret_until (the overlap).
    previous_secret_hash: str | None = None
    previous_secret_until: datetime | None = None
    scopes: list[str] = json_list_field()
    is_active: bool = True
    created_at: datetime = created_field()
