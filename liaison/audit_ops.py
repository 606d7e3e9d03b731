"""The operator's audit commands: verify (against checkpoints), checkpoint now, export."""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col

from api.db import UnitOfWork, make_engine, make_sessionmaker
from api.settings import Settings
from audit.checkpoints import Checkpoint, load_public, parse
from audit.models import AuditEvent
from audit.sealer import seal_all
from audit.service import ChainReport, verify_against
from audit.witness import from_settings


@asynccontextmanager
async def _sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[UnitOfWork]]:
    engine = make_engine(settings.database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


def read_checkpoints(files: list[Path], key_files: list[Path]) -> list[Checkpoint]:
    """Every checkpoint in `files`, each signature checked against the given public keys
    (raises audit.checkpoints.BadCheckpoint, naming the line, for one that does not verify)."""
    keys = [load_public(path) for path in key_files]
    found: list[Checkpoint] = []
    for path in files:
        found += parse(path.read_text().splitlines(), keys)
    return found


async def verify(settings: Settings, checkpoints: list[Checkpoint]) -> ChainReport:
    """Seal what is committed but not chained yet, then check the chain and every checkpoint."""
    async with _sessions(settings) as sessions:
        await seal_all(sessions)
        async with sessions() as session:
            return await verify_against(session, checkpoints)


async def checkpoint(settings: Settings) -> tuple[Checkpoint | None, list[str]]:
    """Seal what is pending, sign the head and write it to the configured sinks; (it, the sinks)."""
    checkpointer = from_settings(settings)
    if checkpointer is None:
        raise ValueError("LIAISON_AUDIT_CHECKPOINT_KEY_FILE is not set")
    async with _sessions(settings) as sessions:
        await seal_all(sessions)
        return await checkpointer.write(sessions), [str(sink) for sink in checkpointer.sinks]


async def export(settings: Settings, out: Path, checkpoints: list[Checkpoint]) -> int:
    """The sealed rows in seq order, then the checkpoints, as JSON lines in `out`; how many rows."""
    count, last = 0, 0
    async with _sessions(settings) as sessions:
        await seal_all(sessions)
        with out.open("w") as f:
            while rows := await _rows_after(sessions, last):
                for row in rows:
                    f.write(
                        json.dumps({"type": "event", **row.model_dump(mode="json")}, sort_keys=True) + "\n"
                    )
                seq = rows[-1].seq
                assert seq is not None  # rows after a seq are sealed: they all have one
                count, last = count + len(rows), seq
            for cp in sorted(checkpoints, key=lambda c: c.seq):
                f.write(json.dumps({"type": "checkpoint", **cp.__dict__}, sort_keys=True) + "\n")
    return count


async def _rows_after(sessions: async_sessionmaker, seq: int, batch: int = 1000) -> list[AuditEvent]:
    async with sessions() as session:
        query = select(AuditEvent).where(col(AuditEvent.seq) > seq).order_by(col(AuditEvent.seq)).limit(batch)
        return list((await session.execute(query)).scalars())
