"""Writing checkpoints of the chain head to the operator's sinks: after sealing, and on demand."""

import asyncio
import logging
import os
import time
from typing import Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col

from api.settings import Settings
from api.tasks import whole
from audit.checkpoints import Checkpoint, load_private, sign
from audit.models import AuditHead

log = logging.getLogger("liaison.audit")


class Sink(Protocol):
    async def write(self, checkpoint: Checkpoint) -> None: ...


class FileSink:
    """One line per checkpoint, appended (O_APPEND) and synced before the write counts as done. Make the
    file append-only for the service's user (chattr +a) or ship it off the host to keep it honest."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def write(self, checkpoint: Checkpoint) -> None:
        await asyncio.to_thread(self._append, checkpoint.line() + "\n")

    def _append(self, line: str) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def __str__(self) -> str:
        return self.path


class WebhookSink:
    """A witness elsewhere: each checkpoint POSTed as JSON; it keeps what the database writer cannot reach."""

    def __init__(self, url: str, timeout: float = 3.0) -> None:
        self.url, self._timeout = url, timeout

    async def write(self, checkpoint: Checkpoint) -> None:
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            (await client.post(self.url, json=checkpoint.__dict__)).raise_for_status()

    def __str__(self) -> str:
        return self.url


class Checkpointer:
    """Signs the head and hands it to every sink; after sealing, at most once per `seconds`."""

    def __init__(self, key: Ed25519PrivateKey, sinks: list[Sink], *, seconds: float = 0.0) -> None:
        self._key, self.sinks, self._seconds = key, sinks, seconds
        self._pending, self._last_at = False, 0.0

    def sealed(self) -> None:
        """Rows were sealed: the head moved, a checkpoint is due."""
        self._pending = True

    async def after_sealing(self, sessions: async_sessionmaker) -> None:
        if self._pending and time.monotonic() - self._last_at >= self._seconds:
            await self.write(sessions)

    async def write(self, sessions: async_sessionmaker) -> Checkpoint | None:
        """Sign the committed head now and write it to every sink; None while the chain is empty."""
        head = await whole(_read_head(sessions))
        self._pending, self._last_at = False, time.monotonic()
        if head.seq == 0:
            return None
        checkpoint = sign(self._key, seq=head.seq, hash=head.hash)
        failed = None
        for sink in self.sinks:  # each sink on its own: one witness down does not silence the others
            try:
                await sink.write(checkpoint)
            except (OSError, httpx.HTTPError) as exc:
                failed = exc
                log.warning("audit checkpoint at seq %s not written to %s (%s)", head.seq, sink, exc)
        if failed is not None:
            self._pending = True  # tried again after the next round
        return checkpoint


async def _read_head(sessions: async_sessionmaker) -> AuditHead:
    async with sessions() as session:
        return (await session.execute(select(AuditHead).where(col(AuditHead.id) == 1))).scalar_one()


def from_settings(settings: Settings) -> Checkpointer | None:
    """The node's checkpointer, or None when no signing key is configured."""
    if not settings.audit_checkpoint_key_file:
        return None
    sinks: list[Sink] = []
    if settings.audit_checkpoint_file:
        sinks.append(FileSink(settings.audit_checkpoint_file))
    if settings.audit_checkpoint_url:
        sinks.append(WebhookSink(settings.audit_checkpoint_url))
    key = load_private(settings.audit_checkpoint_key_file)
    return Checkpointer(key, sinks, seconds=settings.audit_checkpoint_seconds)
