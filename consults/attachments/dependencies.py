"""Request dependencies of attachments: the store, the tus version, and a caller read without the body."""

from collections.abc import AsyncIterator

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import UnitOfWork
from api.openapi import answers
from auth.context import AuthContext
from auth.dependencies import auth_context, bearer, current_actor
from auth.principal import Actor
from consults.attachments.exceptions import TusVersion
from consults.attachments.storage import Store

TUS_VERSION = "1.0.0"


async def store(request: Request) -> Store:
    return request.app.state.attachments


@answers(412)
async def tus(tus_resumable: str | None = Header(None)) -> None:
    """A tus request names the version it speaks; one that names none is taken to speak ours."""
    # Lenient on a missing header so that the boundary (404) answers before the protocol does.
    if tus_resumable is not None and tus_resumable != TUS_VERSION:
        raise TusVersion()


@answers(503)
async def bodyless_session(request: Request) -> AsyncIterator[UnitOfWork]:
    # api.db.get_session reads the whole body first (to notice a client that left): a PATCH's body
    # is streamed to the store instead, a piece at a time.
    async with request.app.state.sessionmaker() as session:
        yield session


@answers(401)
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
