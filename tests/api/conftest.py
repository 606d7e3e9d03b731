"""A scratch PostgreSQL database per test module, for the fault tests (tests/faults.py)."""

import pytest

from tests.conftest import scratch_database


@pytest.fixture(scope="module")
async def scratch():
    """(name, url) of a migrated database of the module's own: terminating its backends hits no other test."""
    async with scratch_database("liaison_faults") as made:
        yield made
