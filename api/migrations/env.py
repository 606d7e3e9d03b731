"""Alembic environment: always handed a live connection by api.migrate."""

from alembic import context
from sqlmodel import SQLModel

import agreements.models  # noqa: F401  (tables register on import)
import audit.models  # noqa: F401
import auth.models  # noqa: F401
import consults.models  # noqa: F401
import events.models  # noqa: F401
import orgs.models  # noqa: F401
import rosters.models  # noqa: F401
import signaling.models  # noqa: F401

target_metadata = SQLModel.metadata


def run() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run()
