"""The audit trail: what is recorded, who reads it, and a hash chain the database and `liaison audit verify` defend."""

import asyncio
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from api.db import commit
from audit.models import AuditEvent
from audit.sealer import seal_all
from audit.service import record, verify_chain
from auth.principal import ANONYMOUS
from tests.conftest import PASSWORD

LIAISON = Path(sys.executable).parent / "liaison"


async def events(app, **where) -> list[AuditEvent]:
    """The rows, sealed into the chain first (the node's sealer would within a second)."""
    await seal_all(app.state.sessionmaker)
    async with app.state.sessionmaker() as session:
        query = select(AuditEvent).order_by(AuditEvent.seq)
        for name, value in where.items():
            query = query.where(getattr(AuditEvent, name) == value)
        return list((await session.execute(query)).scalars())


# --- what is recorded ---------------------------------------------------------------------------------------------


async def test_sign_in_success_and_failure_are_recorded(app, world):
    user_id, org_a = str(world.users["a-clinician"]), world.orgs["A"]
    await world.login("a-clinician")
    bad = await world.client.post(
        "/api/v1/auth/login", json={"username": "a-clinician", "password": "wrong-one"}
    )
    unknown = await world.client.post(
        "/api/v1/auth/login", json={"username": "nobody-at-all", "password": "wrong-one"}
    )
    assert bad.status_code == unknown.status_code == 401
    rows = await events(app, action="auth.login")
    assert [(r.outcome, r.reason) for r in rows] == [
        ("success", None),
        ("failure", "bad_credentials"),
        ("failure", "bad_credentials"),
    ]
    ok, failed, nobody = rows
    assert (ok.actor_type, ok.actor_id, ok.actor_org_id, ok.org_id) == ("user", user_id, org_a, org_a)
    assert (ok.resource_type, ok.resource_id) == ("user", user_id)
    assert failed.org_id == org_a and failed.actor_type == "anonymous"  # A's admin sees attempts on A's users
    assert nobody.org_id is None
    assert all(r.client_addr == "127.0.0.1" and r.request_id for r in rows)


async def test_authorization_failures_are_recorded_as_denied(app, world):
    clinician, admin = await world.headers("a-clinician"), await world.headers("a-org_admin")
    forbidden = await world.client.get(f"/api/v1/orgs/{world.orgs['A']}/users", headers=clinician)
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "permission_denied"
    hidden = await world.client.get(f"/api/v1/orgs/{world.orgs['C']}/users", headers=admin)
    assert hidden.status_code == 404 and hidden.json()["code"] == "not_found"
    hidden_agreement = await world.client.get(
        f"/api/v1/agreements/{world.agreement_id}", headers=await world.headers("c-org_admin")
    )
    assert hidden_agreement.status_code == 404
    bad_token = await world.client.get("/api/v1/me", headers={"Authorization": "Bearer not-a-real-token"})
    assert bad_token.status_code == 401

    denied = await events(app, outcome="denied")
    by_reason = {(r.reason, r.actor_id): r for r in denied}
    r = by_reason[("permission_denied", str(world.users["a-clinician"]))]
    assert r.actor_org_id == world.orgs["A"] and "/users" in r.action
    assert r.request_id == forbidden.headers["x-request-id"]
    r = by_reason[("not_found", str(world.users["a-org_admin"]))]
    assert r.resource_id == str(world.orgs["C"]) and r.actor_org_id == world.orgs["A"]
    r = by_reason[("not_found", str(world.users["c-org_admin"]))]
    assert r.resource_id == str(world.agreement_id) and r.actor_org_id == world.orgs["C"]
    r = by_reason[("invalid_token", None)]
    assert r.actor_type == "anonymous"
    # A probe of the A-B agreement is filed for both its parties; of C's users, for C.
    probes = [r for r in denied if r.resource_id == str(world.agreement_id)]
    assert sorted(str(r.org_id) for r in probes) == sorted(str(world.orgs[k]) for k in "AB")
    assert by_reason[("not_found", str(world.users["a-org_admin"]))].org_id == world.orgs["C"]
    assert len(denied) == 5
    # The refused requests did nothing else: no read or list was recorded for them.
    assert not await events(app, action="user.list") and not await events(app, action="agreement.read")


async def test_reads_are_recorded(app, world):
    admin = await world.headers("a-org_admin")
    assert (await world.client.get(f"/api/v1/orgs/{world.orgs['A']}/users", headers=admin)).status_code == 200
    assert (
        await world.client.get(f"/api/v1/agreements/{world.agreement_id}", headers=admin)
    ).status_code == 200
    assert (await world.client.get("/api/v1/agreements", headers=admin)).status_code == 200
    actor = str(world.users["a-org_admin"])
    (listing,) = await events(app, action="user.list")
    assert (listing.actor_id, listing.org_id, listing.resource_type, listing.outcome) == (
        actor,
        world.orgs["A"],
        "user",
        "success",
    )
    reads = await events(app, action="agreement.read")
    assert {r.org_id for r in reads} == {world.orgs["A"], world.orgs["B"]}  # recorded for both parties
    assert all(r.resource_id == str(world.agreement_id) and r.actor_id == actor for r in reads)
    assert len(await events(app, action="agreement.list")) == 1


async def test_no_token_or_password_is_ever_recorded(app, world):
    secret_password = "correct-horse-battery-staple-42"
    pair = await world.login("b-specialist")
    refreshed = (
        await world.client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    ).json()
    await world.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}
    )  # reuse: denied
    await world.client.post(
        "/api/v1/auth/login", json={"username": "b-specialist", "password": secret_password}
    )
    # Someone types their password into the username field.
    await world.client.post("/api/v1/auth/login", json={"username": secret_password, "password": PASSWORD})
    await world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {pair['access_token']}x"})
    await world.client.get("/api/v1/me", headers={"Authorization": f"Bearer {refreshed['access_token']}"})
    await world.client.post(
        "/api/v1/auth/logout", headers={"Authorization": f"Bearer {refreshed['access_token']}"}
    )

    rows = await events(app)
    assert len(rows) >= 7
    secrets = [
        PASSWORD,
        secret_password,
        pair["access_token"],
        pair["refresh_token"],
        refreshed["access_token"],
        refreshed["refresh_token"],
    ]
    # Any recognizable piece of a JWT (its signature, its payload) counts as a leak.
    secrets += [part for tok in secrets[2:] for part in tok.split(".")[1:]]
    async with app.state.sessionmaker() as session:
        raw = (await session.execute(text("SELECT * FROM audit_events"))).all()
    assert len(raw) == len(rows)
    for row in raw:
        blob = " ".join(str(v) for v in row)
        for s in secrets:
            assert s not in blob, (s[:12], row)


# --- who reads it --------------------------------------------------------------------------------------------------


async def test_org_admin_reads_own_org_events_including_partner_reads(app, world):
    a_admin, b_admin, c_admin = [
        await world.headers(u) for u in ("a-org_admin", "b-org_admin", "c-org_admin")
    ]
    await world.login("a-clinician")
    await world.login("c-clinician")
    # B (the partner) reads the A->B agreement: A's admin must see that.
    assert (
        await world.client.get(f"/api/v1/agreements/{world.agreement_id}", headers=b_admin)
    ).status_code == 200
    # B and C go about their own business: A's admin must not see it.
    assert (
        await world.client.get(f"/api/v1/orgs/{world.orgs['B']}/users", headers=b_admin)
    ).status_code == 200
    assert (
        await world.client.get(f"/api/v1/orgs/{world.orgs['C']}/users", headers=c_admin)
    ).status_code == 200
    assert (
        await world.client.get(f"/api/v1/orgs/{world.orgs['A']}/users", headers=c_admin)
    ).status_code == 404

    resp = await world.client.get("/api/v1/audit?limit=200", headers=a_admin)
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    org_a, org_b, org_c = (str(world.orgs[k]) for k in "ABC")
    assert items == sorted(items, key=lambda e: -e["id"])  # newest first
    assert all(org_a in (e["org_id"], e["actor_org_id"]) for e in items)
    partner_read = [e for e in items if e["action"] == "agreement.read"]
    assert len(partner_read) == 1
    assert partner_read[0]["actor_org_id"] == org_b and partner_read[0]["org_id"] == org_a
    assert partner_read[0]["actor_id"] == str(world.users["b-org_admin"])
    assert any(
        e["action"] == "auth.login" and e["actor_id"] == str(world.users["a-clinician"]) for e in items
    )
    # Of C, A sees only C's refused probe of A's users.
    from_c = [e for e in items if org_c in (e["org_id"], e["actor_org_id"])]
    assert [(e["outcome"], e["org_id"], e["resource_id"]) for e in from_c] == [("denied", org_a, org_a)]
    assert not any(e["action"] == "user.list" and e["org_id"] == org_b for e in items)
    assert all("prev_hash" not in e for e in items)

    # C's admin sees C's events, and nothing of the A-B agreement.
    c_items = (await world.client.get("/api/v1/audit?limit=200", headers=c_admin)).json()["items"]
    assert any(e["action"] == "user.list" and e["org_id"] == org_c for e in c_items)
    assert any(
        e["action"] == "auth.login" and e["actor_id"] == str(world.users["c-clinician"]) for e in c_items
    )
    assert not any(e["action"] == "agreement.read" for e in c_items)
    assert all(org_c in (e["org_id"], e["actor_org_id"]) for e in c_items)

    # Filters and paging.
    only = (await world.client.get("/api/v1/audit?action=agreement.read", headers=a_admin)).json()["items"]
    assert [e["id"] for e in only] == [e["id"] for e in partner_read]
    first = (await world.client.get("/api/v1/audit?limit=2", headers=a_admin)).json()
    assert len(first["items"]) == 2 and first["next_offset"] == 2


async def test_audit_log_needs_audit_permission(world):
    for user in ("a-coordinator", "a-clinician", "a-specialist"):
        resp = await world.client.get("/api/v1/audit", headers=await world.headers(user))
        assert resp.status_code == 403 and resp.json()["code"] == "permission_denied"
    assert (await world.client.get("/api/v1/audit")).status_code == 401


# --- the chain -----------------------------------------------------------------------------------------------------


async def some_history(world) -> None:
    await world.login("a-clinician")
    await world.client.post("/api/v1/auth/login", json={"username": "a-clinician", "password": "wrong-one"})
    admin = await world.headers("a-org_admin")
    await world.client.get(f"/api/v1/orgs/{world.orgs['A']}/users", headers=admin)
    await world.client.get(f"/api/v1/orgs/{world.orgs['C']}/users", headers=admin)  # denied
    await world.client.get(f"/api/v1/agreements/{world.agreement_id}", headers=admin)


async def liaison_audit_verify(env) -> tuple[int, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    environ |= {"LIAISON_DATABASE_URL": env["database_url"], "LIAISON_ENVIRONMENT": "development"}
    proc = await asyncio.create_subprocess_exec(
        str(LIAISON),
        "audit",
        "verify",
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, (out + err).decode()


@asynccontextmanager
async def tamperable(app, env):
    """A connection on which the append-only triggers are off; on PostgreSQL they are back on afterwards."""
    pg = env["name"] == "scaled"
    try:
        async with app.state.engine.begin() as conn:
            if pg:
                await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
            else:  # the test's own copy of the database: nothing to restore
                await conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
                await conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))
            yield conn
    finally:
        if pg:
            async with app.state.engine.begin() as conn:
                await conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))


async def test_verify_passes_untouched_and_names_an_altered_row(app, env, world):
    await some_history(world)
    rows = await events(app)
    assert len(rows) >= 5
    code, output = await liaison_audit_verify(env)
    assert code == 0, output
    assert f"audit chain OK: {len(rows)} events" in output

    failed_login = next(r for r in rows if r.outcome == "failure")
    assert failed_login.seq not in (rows[0].seq, rows[-1].seq)
    async with tamperable(app, env) as conn:
        changed = await conn.execute(
            text("UPDATE audit_events SET outcome = 'success', reason = NULL WHERE seq = :s"),
            {"s": failed_login.seq},
        )
        assert changed.rowcount == 1
    code, output = await liaison_audit_verify(env)
    assert code == 1, output
    assert f"audit chain BROKEN at seq {failed_login.seq}" in output


async def test_verify_names_a_deleted_row(app, env, world):
    await some_history(world)
    rows = await events(app)
    middle = rows[len(rows) // 2]
    async with tamperable(app, env) as conn:
        await conn.execute(text("DELETE FROM audit_events WHERE seq = :s"), {"s": middle.seq})
    code, output = await liaison_audit_verify(env)
    assert code == 1, output
    assert f"audit chain BROKEN at seq {middle.seq}" in output
    # Cutting off the newest events (and leaving the head alone) is caught as well.
    async with tamperable(app, env) as conn:
        await conn.execute(text("DELETE FROM audit_events WHERE seq >= :s"), {"s": middle.seq})
    async with app.state.sessionmaker() as session:
        report = await verify_chain(session)
    assert not report.ok and report.broken_seq == middle.seq


async def test_verify_catches_a_rewritten_action_even_with_hashes_left_alone(app, env, world):
    await some_history(world)
    rows = await events(app)
    target = next(r for r in rows if r.action == "agreement.read")
    async with tamperable(app, env) as conn:
        await conn.execute(
            text("UPDATE audit_events SET action = 'org.read' WHERE seq = :s"), {"s": target.seq}
        )
    async with app.state.sessionmaker() as session:
        report = await verify_chain(session)
    assert not report.ok and report.broken_seq == target.seq


async def test_database_refuses_update_and_delete_of_audit_events(app, world):
    await some_history(world)
    before = [(r.seq, r.action, r.outcome, r.hash) for r in await events(app)]
    statements = [
        "UPDATE audit_events SET outcome = 'success' WHERE seq = 2",
        "UPDATE audit_events SET seq = seq + 1000, hash = 'x' WHERE seq = 2",  # sealed once, for good
        "UPDATE audit_events SET action = 'nothing'",
        "DELETE FROM audit_events WHERE seq = 2",
        "DELETE FROM audit_events",
    ]
    for sql in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            async with app.state.engine.begin() as conn:
                await conn.execute(text(sql))
    # The ORM path is refused just the same.
    with pytest.raises(DBAPIError, match="append-only"):
        async with app.state.sessionmaker() as session:
            row = await session.get(AuditEvent, 3)
            await session.delete(row)
            await commit(session)
    assert [(r.seq, r.action, r.outcome, r.hash) for r in await events(app)] == before
    async with app.state.sessionmaker() as session:
        report = await verify_chain(session)
        assert report.ok and report.checked == len(before)
        assert (await session.execute(select(func.count()).select_from(AuditEvent))).scalar_one() == len(
            before
        )


async def test_appends_stay_in_one_chain_under_concurrency(app, world):
    """Many requests at once each take the next sequence number; the chain still verifies."""
    admin = await world.headers("a-org_admin")
    url = f"/api/v1/orgs/{world.orgs['A']}/users"
    answers = await asyncio.gather(*(world.client.get(url, headers=admin) for _ in range(20)))
    assert all(r.status_code == 200 for r in answers)
    rows = await events(app)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert len(await events(app, action="user.list")) == 20
    async with app.state.sessionmaker() as session:
        assert (await verify_chain(session)).ok


async def test_refusals_with_long_garbage_ids_are_still_recorded(app, world):
    """A refusal is recorded even when the path carries an id far longer than any real one."""
    junk = "x" * 300
    resp = await world.client.get(f"/api/v1/orgs/{junk}/users", headers=await world.headers("a-clinician"))
    assert resp.status_code in (403, 422)
    resp = await world.client.post(
        f"/api/v1/agreements/{junk}/revoke", headers={"Authorization": "Bearer nope"}
    )
    assert resp.status_code == 401
    denied = await events(app, outcome="denied")
    assert {r.reason for r in denied} >= {"invalid_token"}
    assert len(denied) == 2, [(r.action, r.reason) for r in denied]
    assert all(r.resource_id is None or len(r.resource_id) <= 64 for r in denied)
    async with app.state.sessionmaker() as session:
        assert (await verify_chain(session)).ok


async def test_an_open_append_holds_nobody_up_and_is_sealed_once_it_commits(app, env, world):
    """Appends take no shared lock: a transaction that appended and has not committed delays no other
    audited request; the sealer chains the others first and the late row after them."""
    if env["name"] != "scaled":
        pytest.skip("SQLite serializes every writer (BEGIN IMMEDIATE): there is no concurrency to show")
    admin = await world.headers("a-org_admin")
    async with app.state.sessionmaker() as slow:
        await record(slow, actor=ANONYMOUS, action="slow.write")
        answered = await asyncio.wait_for(
            world.client.get(f"/api/v1/orgs/{world.orgs['A']}/users", headers=admin), 5
        )
        assert answered.status_code == 200
        assert await seal_all(app.state.sessionmaker) >= 1  # the others are chained; the open row is not seen
        await commit(slow)
    rows = await events(app)
    late = rows[-1]
    assert late.action == "slow.write" and late.id < max(r.id for r in rows)
    async with app.state.sessionmaker() as session:
        assert (await verify_chain(session)).ok
