"""Alembic environment: always handed a live connection by api.migrate."""

from alembic import context

# Only autogenerating a revision compares the tables with the schema, and whoever does so hands
# their metadata in (liaison.models), so that the kernel imports no domain. Upgrades run the
# hand-written revisions and need none.
target_metadata = context.config.attributes.get("target_metadata")


def run() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection, target_metadata=target_metadata, render_as_batch=True, compare_type=True
    )
    with context.begin_transaction():
        context.run_migrations()


run()
