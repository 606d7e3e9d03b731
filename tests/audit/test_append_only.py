"""The database itself refuses to truncate the audit trail."""

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError


async def test_truncate_refused_on_postgresql(app, env):
    if env["name"] != "scaled":
        pytest.skip("SQLite has no TRUNCATE; its DELETE is refused by the row triggers")
    async with app.state.engine.connect() as conn:
        with pytest.raises(DBAPIError, match="append-only"):
            await conn.execute(text("TRUNCATE audit_events"))
