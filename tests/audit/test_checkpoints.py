"""Signed checkpoints kept outside the database catch what the chain alone cannot: a database writer
who drops the triggers, rewrites a row and re-chains the rest, or cuts the tail and moves the head."""

import asyncio
import json
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select, text, update

from api.settings import Settings
from audit.chain import event_hash
from audit.checkpoints import generate_key, load_private
from audit.models import AuditEvent, AuditHead
from audit.sealer import seal_all
from audit.witness import Checkpointer, FileSink, WebhookSink
from tests.audit.test_audit import events

LIAISON = Path(sys.executable).parent / "liaison"


@pytest.fixture
def keys(tmp_path) -> dict[str, Path]:
    private, public = tmp_path / "audit-key.pem", tmp_path / "audit-key.pub"
    public.write_text(generate_key(private))
    return {"private": private, "public": public, "sink": tmp_path / "checkpoints.jsonl"}


@pytest.fixture
def settings_overrides(keys) -> dict:
    return {
        "audit_checkpoint_key_file": str(keys["private"]),
        "audit_checkpoint_file": str(keys["sink"]),
        "audit_seal_seconds": 0.1,
    }


async def history(app, world) -> None:
    """Requests one after another, the head checkpointed after each (as the sealer does after a round)."""
    admin = await world.headers("a-org_admin")
    steps = [
        lambda: world.client.post("/api/v1/auth/login", json={"username": "a-clinician", "password": "nope"}),
        lambda: world.client.get(f"/api/v1/orgs/{world.orgs['A']}/users", headers=admin),
        lambda: world.client.get(f"/api/v1/orgs/{world.orgs['C']}/users", headers=admin),
        lambda: world.client.get(f"/api/v1/agreements/{world.agreement_id}", headers=admin),
        lambda: world.client.get("/api/v1/agreements", headers=admin),
        lambda: world.client.get(f"/api/v1/orgs/{world.orgs['A']}/users", headers=admin),
    ]
    for step in steps:
        await step()
        await seal_all(app.state.sessionmaker)
        await app.state.checkpointer.write(app.state.sessionmaker)


async def verify(env, keys, *args: str, **extra_env: str) -> tuple[int, str]:
    """`liaison audit ARGS` (by default verify against the checkpoint file), as an operator runs it."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    environ |= {
        "LIAISON_DATABASE_URL": env["database_url"],
        "LIAISON_ENVIRONMENT": "development",
        **extra_env,
    }
    proc = await asyncio.create_subprocess_exec(
        str(LIAISON),
        "audit",
        *(args or ("verify", "--checkpoints", str(keys["sink"]), "--public-key", str(keys["public"]))),
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, (out + err).decode()


@asynccontextmanager
async def attacker(app, env):
    """A connection as a database writer would have it: the append-only triggers dropped. On PostgreSQL
    (whose database the session's tests share) they are put back afterwards from their own definitions."""
    pg = env["name"] == "scaled"
    async with app.state.engine.begin() as conn:
        if pg:
            query = "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass"
            saved = [tuple(r) for r in await conn.execute(text(query + " AND NOT tgisinternal"))]
            for name, _ in saved:
                await conn.execute(text(f"DROP TRIGGER {name} ON audit_events"))
        else:  # the test's own copy of the database
            await conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
            await conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
    try:
        async with app.state.engine.begin() as conn:
            yield conn
    finally:
        if pg:
            async with app.state.engine.begin() as conn:
                for _, definition in saved:
                    await conn.execute(text(definition))


async def rechain_from(conn, seq: int) -> None:
    """Recompute every hash from `seq` on and move the head: the chain alone then holds again."""
    prev = (await conn.execute(select(AuditEvent.hash).where(AuditEvent.seq == seq - 1))).scalar_one()
    rows = (
        await conn.execute(select(AuditEvent).where(AuditEvent.seq >= seq).order_by(AuditEvent.seq))
    ).all()
    for row in rows:
        digest = event_hash(row, prev)
        await conn.execute(
            update(AuditEvent).where(AuditEvent.seq == row.seq).values(prev_hash=prev, hash=digest)
        )
        prev = digest
    await conn.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=prev))


def checkpointed_seqs(keys) -> set[int]:
    return {json.loads(line)["seq"] for line in keys["sink"].read_text().splitlines()}


async def test_an_untouched_trail_verifies_against_its_checkpoints(app, env, world, keys):
    await history(app, world)
    rows = await events(app)
    assert checkpointed_seqs(keys) >= {rows[-1].seq}
    code, output = await verify(env, keys)
    assert code == 0, output
    assert f"audit chain OK: {len(rows)} events" in output and f"up to seq {rows[-1].seq}" in output


async def test_a_rewritten_and_rechained_row_is_named(app, env, world, keys):
    await history(app, world)
    rows, covered = await events(app), checkpointed_seqs(keys)
    # A row whose own checkpoint and its predecessor's both exist: the checkpoints pin it exactly.
    target = next(r for r in rows[2:-2] if r.seq in covered and r.seq - 1 in covered)
    async with attacker(app, env) as conn:
        await conn.execute(
            update(AuditEvent).where(AuditEvent.seq == target.seq).values(action="nothing.happened")
        )
        await rechain_from(conn, target.seq)
    code, output = await verify(env, keys, "verify")  # the chain alone is fooled: that is the threat
    assert code == 0, output
    code, output = await verify(env, keys)
    assert code == 1, output
    assert f"audit chain BROKEN at seq {target.seq}:" in output
    assert f"a row in seq {target.seq}..{target.seq} was rewritten" in output


async def test_a_rewrite_between_checkpoints_is_narrowed_to_their_span(app, env, world, keys):
    await history(app, world)
    covered = sorted(checkpointed_seqs(keys))
    # Two rows sealed in one round (the agreement read, filed for both parties): one checkpoint for both.
    before, after = next((a, b) for a, b in zip(covered, covered[1:], strict=False) if b - a >= 2)
    async with attacker(app, env) as conn:
        await conn.execute(update(AuditEvent).where(AuditEvent.seq == before + 1).values(outcome="failure"))
        await rechain_from(conn, before + 1)
    code, output = await verify(env, keys)
    assert code == 1 and f"BROKEN at seq {after}:" in output, output
    assert f"a row in seq {before + 1}..{after} was rewritten" in output


async def test_a_cut_tail_with_the_head_moved_is_named(app, env, world, keys):
    await history(app, world)
    rows = await events(app)
    keep = rows[len(rows) // 2]
    async with attacker(app, env) as conn:
        await conn.execute(text("DELETE FROM audit_events WHERE seq > :s"), {"s": keep.seq})
        await conn.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=keep.seq, hash=keep.hash))
    code, output = await verify(env, keys, "verify")
    assert code == 0, output  # without checkpoints nothing shows
    code, output = await verify(env, keys)
    assert code == 1, output
    assert f"audit chain BROKEN at seq {keep.seq + 1}: rows from here on are gone" in output


async def test_a_forged_or_altered_checkpoint_is_itself_refused(app, env, world, keys, tmp_path):
    await history(app, world)
    lines = keys["sink"].read_text().splitlines()
    forged = json.loads(lines[-1]) | {"seq": 1}
    keys["sink"].write_text("\n".join([*lines, json.dumps(forged)]) + "\n")
    code, output = await verify(env, keys)
    assert code == 1 and f"checkpoint line {len(lines) + 1} (seq 1): the signature does not verify" in output
    # Another key's checkpoints are not ours.
    other = tmp_path / "other.pem"
    (tmp_path / "other.pub").write_text(generate_key(other))
    keys["sink"].write_text("\n".join(lines) + "\n")
    code, output = await verify(
        env, keys, "verify", "--checkpoints", str(keys["sink"]), "--public-key", str(tmp_path / "other.pub")
    )
    assert code == 1 and "signed by unknown key" in output


async def test_the_sealer_checkpoints_after_sealing(app, env, world, keys):
    await world.login("a-clinician")
    for _ in range(100):  # the node's sealer runs every 0.1 s here
        if keys["sink"].exists() and checkpointed_seqs(keys):
            break
        await asyncio.sleep(0.1)
    assert keys["sink"].exists() and checkpointed_seqs(keys), "the sealer wrote no checkpoint"
    assert max(checkpointed_seqs(keys)) <= (await events(app))[-1].seq
    code, output = await verify(env, keys)
    assert code == 0, output


async def test_export_writes_rows_then_checkpoints(app, env, world, keys, tmp_path):
    await history(app, world)
    rows = await events(app)
    out = tmp_path / "export.jsonl"
    code, output = await verify(
        env,
        keys,
        "export",
        "--out",
        str(out),
        "--checkpoints",
        str(keys["sink"]),
        "--public-key",
        str(keys["public"]),
    )
    assert code == 0, output
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = [e["type"] for e in exported]
    assert kinds == ["event"] * len(rows) + ["checkpoint"] * (len(kinds) - len(rows))
    assert [e["seq"] for e in exported[: len(rows)]] == [r.seq for r in rows]
    assert exported[len(rows) - 1]["hash"] == rows[-1].hash
    assert f"exported {len(rows)} events" in output


def test_checkpoint_settings_come_as_a_pair():
    with pytest.raises(ValidationError, match="CHECKPOINT_KEY_FILE"):
        Settings(audit_checkpoint_key_file="/some/key.pem")
    with pytest.raises(ValidationError, match="CHECKPOINT_KEY_FILE"):
        Settings(audit_checkpoint_file="/var/log/liaison-checkpoints.jsonl")


@asynccontextmanager
async def witness():
    """A webhook witness on loopback: keeps every body POSTed to it."""
    bodies: list[dict] = []

    async def answer(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        bodies.append(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/checkpoints", bodies
    finally:
        server.close()
        await server.wait_closed()


async def test_a_webhook_witness_gets_each_checkpoint_and_one_down_silences_no_other(
    app, world, keys, tmp_path
):
    await world.login("a-clinician")
    await seal_all(app.state.sessionmaker)
    sink = tmp_path / "node.jsonl"
    async with witness() as (url, bodies):
        checkpointer = Checkpointer(load_private(keys["private"]), [FileSink(str(sink)), WebhookSink(url)])
        written = await checkpointer.write(app.state.sessionmaker)
        assert bodies == [json.loads(sink.read_text())] == [written.__dict__]
    # The witness is gone: the file still gets the checkpoint, and the next round tries again.
    await world.login("a-clinician")
    await seal_all(app.state.sessionmaker)
    again = await checkpointer.write(app.state.sessionmaker)
    assert again.seq > written.seq and [json.loads(x)["seq"] for x in sink.read_text().splitlines()] == [
        written.seq,
        again.seq,
    ]
    assert checkpointer._pending


async def test_liaison_audit_checkpoint_appends_the_head(app, env, world, keys):
    await world.login("a-clinician")
    head = (await events(app))[-1].seq
    code, output = await verify(
        env,
        keys,
        "checkpoint",
        LIAISON_AUDIT_CHECKPOINT_KEY_FILE=str(keys["private"]),
        LIAISON_AUDIT_CHECKPOINT_FILE=str(keys["sink"]),
    )
    assert code == 0 and f"checkpoint at seq {head}" in output, output
    assert head in checkpointed_seqs(keys)
    code, output = await verify(env, keys, "checkpoint")  # no key configured: says so, exit 2
    assert code == 2 and "LIAISON_AUDIT_CHECKPOINT_KEY_FILE" in output
