"""The one commit path: a session of ours cannot commit any other way, and work after a commit never
turns a durable write into an error."""

import pytest
from sqlalchemy import text

from api.db import after_commit, before_commit, commit


async def test_a_plain_session_commit_is_refused(app):
    async with app.state.sessionmaker() as session:
        await session.execute(text("SELECT 1"))
        with pytest.raises(RuntimeError, match="api.db.commit"):
            await session.commit()


async def test_hooks_run_around_the_commit_and_a_failing_notice_is_not_raised(app):
    seen: list[str] = []

    async def before(_):
        seen.append("before")

    async def after(_):
        seen.append("after")
        raise ConnectionError("the bus is down")

    async with app.state.sessionmaker() as session:
        before_commit(session, before)
        after_commit(session, after)
        await commit(session)
    assert seen == ["before", "after"]


async def test_a_rollback_forgets_the_hooks_of_the_work_it_undid(app):
    seen: list[str] = []

    async def hook(_):
        seen.append("ran")

    async with app.state.sessionmaker() as session:
        before_commit(session, hook)
        after_commit(session, hook)
        await session.rollback()
        await commit(session)
    assert seen == []
