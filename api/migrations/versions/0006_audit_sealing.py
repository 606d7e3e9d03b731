"""audit: rows are appended without a lock and sealed into the hash chain afterwards

Appends took the chain head's row lock from the append to their transaction's commit, which made
every audited request of a cluster queue on one row. Rows now arrive unsealed (no seq, no hash);
the sealer (audit.sealer) chains committed rows in order under that lock, off the request path.
The database still refuses to delete a row or change one after it is sealed; the one update it
allows is the sealing itself, which may set only seq, prev_hash and hash, once.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CONTENT = (
    "at",
    "actor_type",
    "actor_id",
    "actor_org_id",
    "org_id",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "reason",
    "request_id",
    "client_addr",
)
Text = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    _drop_triggers(pg)
    op.create_table(
        "audit_events_new",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            *([sa.Identity()] if pg else []),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("actor_type", Text(length=16), nullable=False),
        sa.Column("actor_id", Text(length=64), nullable=True),
        sa.Column("actor_org_id", sa.Uuid(), nullable=True),
        sa.Column("org_id", sa.Uuid(), nullable=True),
        sa.Column("action", Text(length=80), nullable=False),
        sa.Column("resource_type", Text(length=40), nullable=True),
        sa.Column("resource_id", Text(length=64), nullable=True),
        sa.Column("outcome", Text(length=16), nullable=False),
        sa.Column("reason", Text(length=80), nullable=True),
        sa.Column("request_id", Text(length=64), nullable=True),
        sa.Column("client_addr", Text(length=64), nullable=True),
        sa.Column("prev_hash", Text(length=64), nullable=True),
        sa.Column("hash", Text(length=64), nullable=True),
    )
    columns = ", ".join(("seq",) + CONTENT + ("prev_hash", "hash"))
    op.execute(
        f"INSERT INTO audit_events_new (id, {columns}) SELECT seq, {columns} FROM audit_events ORDER BY seq"
    )
    op.drop_table("audit_events")
    op.rename_table("audit_events_new", "audit_events")
    if pg:
        op.execute(
            "SELECT setval(pg_get_serial_sequence('audit_events', 'id'), "
            "(SELECT COALESCE(MAX(id), 0) + 1 FROM audit_events), false)"
        )
    op.create_index("ux_audit_events_seq", "audit_events", ["seq"], unique=True)
    op.create_index(
        "ix_audit_events_unsealed",
        "audit_events",
        ["id"],
        postgresql_where=sa.text("seq IS NULL"),
        sqlite_where=sa.text("seq IS NULL"),
    )
    for column in ("action", "actor_org_id", "org_id"):
        op.create_index(f"ix_audit_events_{column}", "audit_events", [column])
    _create_triggers(pg)


def _drop_triggers(pg: bool) -> None:
    if pg:
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_delete")


def _create_triggers(pg: bool) -> None:
    """Refuse every delete, and every update but the one that seals an unsealed row."""
    unchanged = " AND ".join(f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in CONTENT)
    if pg:
        op.execute(
            "CREATE FUNCTION audit_seal_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.id = OLD.id AND {unchanged} "
            "THEN RETURN NEW; END IF; "
            "RAISE EXCEPTION 'audit_events is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_seal_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()"
        )
        return
    unchanged = unchanged.replace("IS NOT DISTINCT FROM", "IS")
    op.execute(
        "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
        f"WHEN NOT (OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.id = OLD.id AND {unchanged}) "
        "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
    )
    op.execute(
        "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events "
        "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
    )


def downgrade() -> None:
    raise NotImplementedError("the audit trail is not un-sealed: restore from a backup instead")
