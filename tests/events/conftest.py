"""A real server on the test's databases with b-specialist on call for A's trauma-surgery consults."""

import pytest

from tests.live import live_world, put_on_call

CONSULT = {"specialty": "trauma-surgery", "urgency": "emergent", "question": "q", "patient_ref": "P-1"}


@pytest.fixture
async def live(env):
    async with live_world(env) as (app, host, w):
        await put_on_call(
            app.state.sessionmaker,
            org_id=w.orgs["B"],
            user_ids=[w.users["b-specialist"]],
            specialty="trauma-surgery",
        )
        yield app, host, w


@pytest.fixture
def scaled(env):
    """The test's databases when they are PostgreSQL + Redis: what several nodes need."""
    if env["name"] != "scaled":
        pytest.skip("two nodes share a database only on PostgreSQL")
    return env
