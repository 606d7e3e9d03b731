"""Request dependencies of attachments: the store, tus headers, and a caller read without the body."""

import base64
import binascii
from collections.abc import AsyncIterator

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import UnitOfWork
from api.schemas import UNSTORABLE
from auth.context import AuthContext
from auth.dependencies import auth_context, bearer, current_actor
from auth.principal import Actor
from consults.attachments.exceptions import BadUploadHeader, TusVersion
from consults.attachments.storage import Store

TUS_VERSION = "1.0.0"


async def store(request: Request) -> Store:
    return request.app.state.attachments


async def tus(tus_resumable: str | None = Header(None)) -> None:
    """Every tus request but OPTIONS names the protocol version it speaks."""
    if tus_resumable != TUS_VERSION:
        raise TusVersion()


async def bodyless_session(request: Request) -> AsyncIterator[UnitOfWork]:
    # api.db.get_session reads the whole body first (to notice a client that left): a PATCH's body
    # is streamed to the store instead, a piece at a time.
    async with request.app.state.sessionmaker() as session:
        yield session


async def streaming_actor(
    request: Request,
    session: AsyncSession = Depends(bodyless_session),
    creds: HTTPAuthorizationCredentials | None = Depends(bearer),
    ctx: AuthContext = Depends(auth_context),
) -> Actor:
    """The caller, authenticated as current_actor does, with the request body left unread."""
    try:
        return await current_actor(request, session, creds, ctx)
    finally:
        await session.rollback()  # hold no connection (or SQLite's write lock) while bytes arrive


def parse_length(value: str | None) -> int:
    if value is None or not value.isdigit() or len(value) > 15:
        raise BadUploadHeader("Upload-Length must be a non-negative integer")
    return int(value)


def parse_offset(value: str | None) -> int:
    if value is None or not value.isdigit() or len(value) > 15:
        raise BadUploadHeader("Upload-Offset must be a non-negative integer")
    return int(value)


def parse_metadata(value: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64(value)` pairs; values must be UTF-8 text."""
    found: dict[str, str] = {}
    if not value:
        return found
    if len(value) > 4096:
        raise BadUploadHeader("Upload-Metadata is limited to 4096 characters")
    for pair in value.split(","):
        key, _, encoded = pair.strip().partition(" ")
        try:
            text = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise BadUploadHeader(f"Upload-Metadata {key!r} is not base64 of UTF-8 text") from None
        if not key or UNSTORABLE.search(text) or len(text) > 255:
            raise BadUploadHeader(f"Upload-Metadata {key!r} is not a storable short text")
        found[key] = text
    return found
