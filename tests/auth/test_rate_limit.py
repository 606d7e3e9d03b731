"""Sign-in failures are rate-limited per username and per address, in a fixed window shared by every node."""

import asyncio
import time

import httpx
import pytest
from sqlalchemy import select

from audit.models import AuditEvent
from liaison.app import create_app
from tests.conftest import PASSWORD, make_settings

LOGIN = "/api/v1/auth/login"
WINDOW = 2
PER_USER = 5
PER_ADDRESS = 8


LIMITS = {
    "login_max_failures": PER_USER,
    "login_max_failures_per_address": PER_ADDRESS,
    "login_window_seconds": WINDOW,
}


@pytest.fixture
def settings_overrides() -> dict:
    return dict(LIMITS)


def client_from(app, addr: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(addr, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://liaison.test")


async def attempt(
    client: httpx.AsyncClient, username: str, password: str = "wrong-password"
) -> httpx.Response:
    return await client.post(LOGIN, json={"username": username, "password": password})


def assert_limited(resp: httpx.Response, window: int = WINDOW) -> None:
    assert resp.status_code == 429, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    assert resp.json()["code"] == "rate_limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= window
    assert "access_token" not in resp.text


async def test_twenty_wrong_passwords_lock_the_username_until_the_window_ends(app, world):
    started = time.monotonic()
    answers = [(await attempt(world.client, "a-clinician")) for _ in range(20)]
    assert [r.status_code for r in answers] == [401] * PER_USER + [429] * (20 - PER_USER)
    assert all(r.json()["code"] == "invalid_credentials" for r in answers[:PER_USER])
    for resp in answers[PER_USER:]:
        assert_limited(resp)
    # The right password inside the window is refused too: a lock an attacker can test is no lock.
    assert_limited(await attempt(world.client, "a-clinician", PASSWORD))
    # The username is limited from every address, not just the one that failed.
    async with client_from(app, "203.0.113.7") as elsewhere:
        assert_limited(await attempt(elsewhere, "a-clinician", PASSWORD))
    # Other users from the same address are not locked out by one user's failures (PER_USER < PER_ADDRESS).
    assert (await attempt(world.client, "a-specialist", PASSWORD)).status_code == 200
    assert time.monotonic() - started < WINDOW, "too slow to prove anything about the window"

    await asyncio.sleep(max(0.0, started + WINDOW + 0.3 - time.monotonic()))
    resp = await attempt(world.client, "a-clinician", PASSWORD)
    assert resp.status_code == 200, resp.text
    assert resp.json()["access_token"]


async def test_success_resets_the_username_count(world):
    # Two rounds of failures that together pass PER_USER; the success between them starts the count again.
    for _ in range(2):
        for _ in range(PER_USER - 2):
            assert (await attempt(world.client, "b-coordinator")).status_code == 401
        assert (await attempt(world.client, "b-coordinator", PASSWORD)).status_code == 200


async def test_usernames_are_limited_case_insensitively(world):
    for name in ("c-clinician", "C-Clinician", "C-CLINICIAN", "c-CLINICIAN", "c-clinician"):
        assert (await attempt(world.client, name)).status_code == 401
    assert_limited(await attempt(world.client, "c-clinician", PASSWORD))


async def test_one_address_spraying_many_usernames_is_limited(app, world):
    async with client_from(app, "198.51.100.23") as sprayer, client_from(app, "198.51.100.24") as neighbour:
        # Few failures per username (below PER_USER), but many from one address; unknown names count too.
        names = [
            "a-clinician",
            "a-specialist",
            "b-clinician",
            "nobody-1",
            "nobody-2",
            "c-coordinator",
            "b-org_admin",
            "nobody-3",
        ]
        assert len(names) == PER_ADDRESS
        for name in names:
            assert (await attempt(sprayer, name)).status_code == 401
        # Now even a correct password for a user who never failed is refused from that address...
        assert_limited(await attempt(sprayer, "a-coordinator", PASSWORD))
        assert_limited(await attempt(sprayer, "nobody-4"))
        # ...while the same user signs in from another address: the per-username counts are far from the limit.
        assert (await attempt(neighbour, "a-coordinator", PASSWORD)).status_code == 200
        assert (await attempt(neighbour, "a-clinician", PASSWORD)).status_code == 200


async def test_rate_limited_attempts_are_audited(app, world):
    for _ in range(PER_USER + 2):
        await attempt(world.client, "b-specialist")
    async with app.state.sessionmaker() as session:
        rows = (
            (
                await session.execute(
                    select(AuditEvent).where(AuditEvent.action == "auth.login").order_by(AuditEvent.id)
                )
            )
            .scalars()
            .all()
        )
    assert [(r.outcome, r.reason) for r in rows] == [("failure", "bad_credentials")] * PER_USER + [
        ("denied", "rate_limited")
    ] * 2


async def test_two_nodes_sharing_redis_share_the_count(env, app, world, settings_overrides):
    if env["name"] == "embedded":
        pytest.skip("the embedded configuration has one node and keeps its counts in memory")
    other = create_app(make_settings(env["database_url"], env["redis_url"], **settings_overrides))
    async with (
        other.router.lifespan_context(other),
        client_from(app, "10.0.0.1") as node1,
        client_from(other, "10.0.0.2") as node2,
    ):
        # Failures spread over both nodes (and two addresses) add up to one count...
        for i in range(PER_USER):
            assert (await attempt(node1 if i % 2 == 0 else node2, "b-clinician")).status_code == 401
        # ...so both nodes now refuse the username, even with the right password.
        assert_limited(await attempt(node2, "b-clinician", PASSWORD))
        assert_limited(await attempt(node1, "b-clinician", PASSWORD))
        # A node started now sees the same count: it lives in Redis, not in any process.
        third = create_app(make_settings(env["database_url"], env["redis_url"], **settings_overrides))
        async with third.router.lifespan_context(third), client_from(third, "10.1.2.3") as node3:
            assert_limited(await attempt(node3, "b-clinician", PASSWORD))
        # A success on one node clears the username's count on every node: two rounds of failures that
        # together pass PER_USER, with a success on the other node between them, never lock the user.
        for signer in (node1, node2):
            for c in (node1, node2):
                assert (await attempt(c, "a-clinician")).status_code == 401
            assert (await attempt(signer, "a-clinician", PASSWORD)).status_code == 200


async def test_parallel_guesses_get_no_more_tries_than_the_limit(app, world):
    """A burst of simultaneous wrong passwords must not all slip past the check before any is counted."""
    async with client_from(app, "192.0.2.50") as burst:
        answers = await asyncio.gather(*(attempt(burst, "c-specialist", f"guess-{i}") for i in range(20)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [401] * PER_USER + [429] * (20 - PER_USER), codes
    assert_limited(await attempt(world.client, "c-specialist", PASSWORD))


# A window that outlasts the test: twenty sign-ins on a loaded machine can take longer than WINDOW.
@pytest.mark.parametrize("settings_overrides", [LIMITS | {"login_window_seconds": 600}], ids=["long-window"])
async def test_successes_do_not_use_up_an_address(app, world):
    """A ward's shared address signs in all day; only failures count against it."""
    async with client_from(app, "192.0.2.77") as ward:
        for i in range(PER_ADDRESS - 1):
            assert (await attempt(ward, f"nobody-{i}")).status_code == 401
        for name in ["a-clinician", "a-specialist", "a-coordinator", "a-org_admin"] * 3:
            assert (await attempt(ward, name, PASSWORD)).status_code == 200
        # One failure left before the address's limit: the successes took nothing from it.
        assert (await attempt(ward, "nobody-else")).status_code == 401
        assert_limited(await attempt(ward, "a-clinician", PASSWORD), window=600)
