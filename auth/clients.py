"""Integration clients: creation by an org admin, and the client-credentials grant."""

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, unquote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from api.db import commit
from api.errors import InvalidInput
from audit.service import record
from auth.attempts import admit, succeeded
from auth.context import AuthContext
from auth.exceptions import Hidden, InvalidClient, InvalidRequest, InvalidScope, UnsupportedGrant
from auth.models import IntegrationClient
from auth.principal import Actor, Anonymous
from auth.roles import CLIENT_SCOPES
from auth.schemas import ClientCreated, ClientPatch, ClientToken
from auth.scope import ensure_own_org
from auth.service import mint_access
from events.control import client_ended

MAX_FORM_FIELDS = 10


async def create_client(
    session: AsyncSession, *, actor: Actor, org_id: uuid.UUID, name: str, scopes: Sequence[str]
) -> ClientCreated:
    """Register a client; its secret is returned this once and stored only as a digest."""
    ensure_own_org(actor, org_id)
    unknown = sorted(set(scopes) - set(CLIENT_SCOPES))
    if unknown:
        raise InvalidInput(f"Scopes not grantable to a client: {', '.join(unknown)}")
    secret = secrets.token_urlsafe(32)
    client = IntegrationClient(
        org_id=org_id, name=name, scopes=sorted({str(s) for s in scopes}), secret_hash=_digest(secret)
    )
    session.add(client)
    await record(
        session,
        actor=actor,
        action="client.create",
        org_id=org_id,
        resource_type="client",
        resource_id=client.id,
    )
    await commit(session)
    return _created(client, secret)


async def list_clients(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID) -> list[IntegrationClient]:
    """The org's integration clients."""
    ensure_own_org(actor, org_id)
    rows = (
        (
            await session.execute(
                select(IntegrationClient)
                .where(col(IntegrationClient.org_id) == org_id)
                .order_by(col(IntegrationClient.created_at))
            )
        )
        .scalars()
        .all()
    )
    await record(session, actor=actor, action="client.list", org_id=org_id, resource_type="client")
    await commit(session)
    return list(rows)


async def update_client(
    session: AsyncSession, *, actor: Actor, org_id: uuid.UUID, client_id: uuid.UUID, patch: ClientPatch
) -> IntegrationClient:
    """Rename, disable or enable a client; disabling refuses its secret and tokens and closes its sockets."""
    client = await _own_client(session, actor, org_id, client_id)
    if patch.name is not None:
        client.name = patch.name
    if patch.is_active is False and client.is_active:
        client_ended(session, client.id, "The integration client was disabled")
    if patch.is_active is not None:
        client.is_active = patch.is_active
    action = {None: "client.update", True: "client.enable", False: "client.disable"}[patch.is_active]
    await _audit(session, actor, client, action)
    return client


async def rotate_secret(
    session: AsyncSession,
    *,
    ctx: AuthContext,
    actor: Actor,
    org_id: uuid.UUID,
    client_id: uuid.UUID,
    at_once: bool = False,
) -> ClientCreated:
    """A new secret, shown this once; the one it replaces keeps working for the configured overlap
    (a planned rotation), or not at all (`at_once`: a leaked secret)."""
    client = await _own_client(session, actor, org_id, client_id)
    secret = secrets.token_urlsafe(32)
    overlap = timedelta(seconds=0 if at_once else ctx.settings.client_secret_overlap_seconds)
    client.previous_secret_hash, client.previous_secret_until = (
        client.secret_hash,
        datetime.now(UTC) + overlap,
    )
    client.secret_hash = _digest(secret)
    await _audit(session, actor, client, "client.rotate_secret")
    return _created(client, secret)


async def delete_client(
    session: AsyncSession, *, actor: Actor, org_id: uuid.UUID, client_id: uuid.UUID
) -> None:
    """Remove a client: its secret and tokens stop working and its sockets close, on every node."""
    client = await _own_client(session, actor, org_id, client_id)
    client_ended(session, client.id, "The integration client was deleted")
    await session.delete(client)
    await _audit(session, actor, client, "client.delete")


async def _own_client(
    session: AsyncSession, actor: Actor, org_id: uuid.UUID, client_id: uuid.UUID
) -> IntegrationClient:
    ensure_own_org(actor, org_id)
    client = await session.get(IntegrationClient, client_id)
    if client is None or client.org_id != org_id:
        raise Hidden()
    return client


async def _audit(session: AsyncSession, actor: Actor, client: IntegrationClient, action: str) -> None:
    await record(
        session,
        actor=actor,
        action=action,
        org_id=client.org_id,
        resource_type="client",
        resource_id=client.id,
    )
    await commit(session)


async def grant(
    session: AsyncSession, *, ctx: AuthContext, actor: Anonymous, body: bytes, authorization: str | None
) -> ClientToken:
    """RFC 6749 §4.4: client id and secret (Basic or form) for a scoped access token."""
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=MAX_FORM_FIELDS)
    except ValueError:  # more fields than that: no grant needs them
        raise InvalidRequest(f"At most {MAX_FORM_FIELDS} form fields") from None
    form = {k: v[0] for k, v in fields.items()}
    if form.get("grant_type") != "client_credentials":
        raise UnsupportedGrant("grant_type must be client_credentials")
    client_id, secret = _credentials(form, authorization)
    id_key, addr_key = f"client:id:{client_id}", f"client:addr:{actor.client_addr}"
    await admit(
        session,
        ctx=ctx,
        actor=actor,
        action="auth.client_token",
        keys=(
            (id_key, ctx.settings.login_max_failures),
            (addr_key, ctx.settings.login_max_failures_per_address),
        ),
    )
    client = await session.get(IntegrationClient, client_id) if client_id else None
    if client is None or not client.is_active or not _secret_matches(client, secret):
        await record(session, actor=actor, action="auth.client_token", outcome="failure", reason="bad_client")
        await commit(session)
        raise InvalidClient()
    await succeeded(ctx, identity_key=id_key, address_key=addr_key)
    asked = set(form.get("scope", "").split()) or set(client.scopes)
    if not asked <= set(client.scopes):
        raise InvalidScope()
    scope = " ".join(sorted(asked))
    token, ttl = mint_access(
        ctx, sub=f"client:{client.id}", org_id=client.org_id, extra={"cid": str(client.id), "scope": scope}
    )
    await record(
        session,
        actor=Actor(
            kind="client",
            id=client.id,
            org_id=client.org_id,
            request_id=actor.request_id,
            client_addr=actor.client_addr,
        ),
        action="auth.client_token",
        org_id=client.org_id,
    )
    await commit(session)
    return ClientToken(access_token=token, expires_in=ttl, scope=scope)


def _credentials(form: dict[str, str], authorization: str | None) -> tuple[uuid.UUID | None, str]:
    raw_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if authorization and authorization.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode()
            raw_id, secret = (unquote(part) for part in decoded.split(":", 1))
        except Exception:
            raise InvalidClient() from None
    try:
        return uuid.UUID(raw_id), secret
    except ValueError:
        return None, secret


def _created(client: IntegrationClient, secret: str) -> ClientCreated:
    kept = client.model_dump(exclude={"secret_hash", "previous_secret_hash", "previous_secret_until"})
    return ClientCreated(**kept, client_secret=secret)


def _secret_matches(client: IntegrationClient, secret: str) -> bool:
    """The current secret, or the one it replaced while the overlap lasts."""
    digest = _digest(secret)
    if hmac.compare_digest(client.secret_hash, digest):
        return True
    until, previous = client.previous_secret_until, client.previous_secret_hash
    if previous is None or until is None:
        return False
    until = until if until.tzinfo else until.replace(tzinfo=UTC)  # SQLite gives naive UTC back
    return datetime.now(UTC) < until and hmac.compare_digest(previous, digest)


def _digest(secret: str) -> str:
    # The secret is 256 random bits, so a plain digest resists guessing as well as a slow hash would.
    return hashlib.sha256(secret.encode()).hexdigest()
