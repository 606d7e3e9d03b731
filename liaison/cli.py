"""`liaison serve | check | migrate | demo | create-admin | audit verify | checkpoint | export | keygen`."""

import asyncio
import logging
import sys
from importlib.metadata import version
from pathlib import Path

import typer

from api.settings import get_settings

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Liaison telemedicine consultation backend."
)
audit_app = typer.Typer(no_args_is_help=True, help="The audit trail.")
app.add_typer(audit_app, name="audit")


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"liaison {version('liaison')}")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    _version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Liaison telemedicine consultation backend."""
    from liaison.startup import sqlite_problem

    # Before any command does anything: a bad setting stops it here (main() names it), and so does
    # a SQLite file that cannot be opened (`check` reports it among its checks).
    s = get_settings()
    if (problem := sqlite_problem(s.database_url)) and ctx.invoked_subcommand != "check":
        typer.echo(f"liaison: {problem}", err=True)
        raise typer.Exit(2)


@app.command()
def serve(host: str = typer.Option(None), port: int = typer.Option(None), workers: int = 1) -> None:
    """Serve the API on HOST:PORT (settings by default)."""
    import uvicorn

    import liaison.workers
    from api.logs import uvicorn_log_config
    from liaison.app import uvicorn_options

    s = get_settings()
    if workers > 1 and not s.redis_url:
        # Workers share calls, events, close orders and the call ledger only through Redis.
        typer.echo("Several workers need LIAISON_REDIS_URL: without Redis each worker is alone", err=True)
        raise typer.Exit(2)
    _require_schema(s.database_url)
    _warn_if_redis_is_away(s)
    options = dict(
        host=host or s.host,
        port=port or s.port,
        workers=workers,
        log_level="info",
        log_config=uvicorn_log_config(),  # its access lines would print query strings, tokens included
        **uvicorn_options(s),
    )
    if workers > 1:  # each worker with a socket of its own, so that the load is spread
        liaison.workers.serve(uvicorn.Config("liaison.asgi:app", **options))
    else:
        uvicorn.run("liaison.asgi:app", **options)


def _require_schema(url: str) -> None:
    """Refuse to serve on a schema that is behind this code, in one line that says what to do."""
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its set-up notes would bury that line
    from sqlalchemy.exc import SQLAlchemyError

    from api.migrate import SchemaBehind, require_current

    # Nodes never migrate: one `liaison migrate` does, before them (deploy/ runs it as a job), so a
    # node's start never races another's DDL and a new node never rewrites the schema under old ones.
    warning = None
    try:
        warning = asyncio.run(require_current(url))
    except SchemaBehind as exc:
        typer.echo(f"liaison serve: {exc}", err=True)
        raise typer.Exit(2) from None
    except (OSError, SQLAlchemyError) as exc:
        # A database that is down is not a misconfiguration: serve, not ready (/readyz) until it answers.
        from liaison.startup import store_problem

        problem = store_problem(exc, get_settings()) or f"cannot read the database schema: {exc!r}"
        typer.echo(f"liaison serve: warning: {problem}; serving, not ready until it answers", err=True)
    if warning:
        typer.echo(f"liaison serve: warning: {warning}; serving anyway", err=True)


def _warn_if_redis_is_away(settings) -> None:
    """Like the database, Redis down at start is a warning: the node serves, not ready (/readyz)."""
    from liaison.startup import check

    redis = asyncio.run(check(settings))[1]
    if not redis.ok:
        typer.echo(f"liaison serve: warning: {redis.detail}; serving, not ready until it answers", err=True)


@app.command("check")
def check_configuration() -> None:
    """Test this configuration without serving: settings, the database (reachable, migrated), Redis."""
    from liaison.startup import check

    s = get_settings()  # invalid settings never get here: main() names them and exits 2
    typer.echo(f"settings: ok ({s.environment})")
    results = asyncio.run(check(s))
    for result in results:
        typer.echo(f"{result.name}: {'ok' if result.ok else 'FAILED'}: {result.detail}")
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@app.command()
def migrate() -> None:
    """Bring the database schema up to date."""
    from api.migrate import upgrade

    asyncio.run(upgrade(get_settings().database_url))
    typer.echo("database is up to date")


@app.command()
def demo() -> None:
    """Seed the demo organizations, users and agreement (idempotent)."""
    from liaison.demo import DemoRefused, seed

    try:
        created = asyncio.run(seed(get_settings()))
    except DemoRefused as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo("demo data created" if created else "demo data already present")


@app.command("create-admin")
def create_admin(
    username: str = typer.Option(...), password: str = typer.Option(..., prompt=True, hide_input=True)
) -> None:
    """Create a platform admin."""
    from liaison.demo import create_platform_admin

    if len(password) < 10:
        raise typer.BadParameter("use at least 10 characters", param_hint="--password")
    created = asyncio.run(create_platform_admin(get_settings(), username, password))
    typer.echo(f"created {username}" if created else f"{username} already exists")


CHECKPOINTS = typer.Option(
    [], "--checkpoints", help="A checkpoint file (the sink's JSON lines); repeat for several."
)
PUBLIC_KEYS = typer.Option(
    [],
    "--public-key",
    help="PEM of a key that signs checkpoints; repeat for rotated keys. Default: the public half of "
    "LIAISON_AUDIT_CHECKPOINT_KEY_FILE.",
)


@audit_app.command("verify")
def audit_verify(checkpoints: list[Path] = CHECKPOINTS, public_key: list[Path] = PUBLIC_KEYS) -> None:
    """Check the audit hash chain, and that it still holds every checkpointed head; exit 1 naming the
    first row that does not hold."""
    from liaison import audit_ops

    found = _checkpoints(checkpoints, public_key)
    report = asyncio.run(audit_ops.verify(get_settings(), found))
    if not report.ok:
        typer.echo(
            f"audit chain BROKEN at seq {report.broken_seq}: {report.problem} "
            f"({report.checked} events verified before it)",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"audit chain OK: {report.checked} events")
    if checkpoints:
        last = max(found, key=lambda cp: cp.seq, default=None)
        covered = f"up to seq {last.seq}, signed {last.at}" if last else "none"
        typer.echo(
            f"checkpoints: {len(found)} hold ({covered}); "
            f"{report.head_seq - (last.seq if last else 0)} newer events are not covered by any yet"
        )


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the chain head now and append it to the configured sinks."""
    from liaison import audit_ops

    try:
        cp, sinks = asyncio.run(audit_ops.checkpoint(get_settings()))
    except (ValueError, OSError) as exc:
        typer.echo(f"liaison audit checkpoint: {exc}", err=True)
        raise typer.Exit(2) from None
    if cp is None:
        typer.echo("the audit chain is empty: nothing to checkpoint")
        return
    typer.echo(f"checkpoint at seq {cp.seq} (key {cp.key}) written to {', '.join(sinks)}")


@audit_app.command("export")
def audit_export(
    out: Path = typer.Option(..., "--out", help="Where to write the JSON lines."),
    checkpoints: list[Path] = CHECKPOINTS,
    public_key: list[Path] = PUBLIC_KEYS,
) -> None:
    """Export the sealed audit rows, in seq order, and the checkpoints (verified), as JSON lines."""
    from liaison import audit_ops

    found = _checkpoints(checkpoints, public_key)
    count = asyncio.run(audit_ops.export(get_settings(), out, found))
    typer.echo(f"exported {count} events and {len(found)} checkpoints to {out}")


@audit_app.command("keygen")
def audit_keygen(out: Path = typer.Option(..., "--out", help="The new private key's file (0600).")) -> None:
    """Make a checkpoint signing key; prints its public key, which verifiers need."""
    from audit.checkpoints import generate_key

    try:
        typer.echo(generate_key(out), nl=False)
    except FileExistsError:
        typer.echo(f"liaison audit keygen: {out} exists; not overwritten", err=True)
        raise typer.Exit(2) from None


def _checkpoints(files: list[Path], key_files: list[Path]) -> list:
    """The files' checkpoints, signatures checked; exit 1 on one that does not verify (it is evidence)."""
    from audit.checkpoints import BadCheckpoint
    from liaison.audit_ops import read_checkpoints

    if not files:
        return []
    if not key_files:
        own = get_settings().audit_checkpoint_key_file
        if not own:
            typer.echo("checkpoints need --public-key or LIAISON_AUDIT_CHECKPOINT_KEY_FILE", err=True)
            raise typer.Exit(2)
        key_files = [Path(own)]
    try:
        return read_checkpoints(files, key_files)
    except BadCheckpoint as exc:
        typer.echo(f"audit checkpoints BROKEN: {exc}", err=True)
        raise typer.Exit(1) from None
    except (OSError, ValueError) as exc:
        typer.echo(f"cannot read the checkpoints or keys: {exc}", err=True)
        raise typer.Exit(2) from None


def main() -> None:
    from api.logs import redact_root

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    redact_root()
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its set-up notes would bury our one line
    try:
        app()
    except Exception as exc:
        sys.exit(_cannot_start(exc))


def _cannot_start(exc: Exception) -> int:
    """Exit 2 with one line per problem for a bad setting or a store out of reach; re-raise the rest."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from liaison.startup import settings_problems, store_problem

    if isinstance(exc, SettingsError) or (isinstance(exc, ValidationError) and exc.title == "Settings"):
        for line in settings_problems(exc):
            typer.echo(f"liaison: bad setting: {line}", err=True)
        return 2
    if (store := store_problem(exc, get_settings())) is not None:
        typer.echo(f"liaison: {store}", err=True)
        return 2
    raise exc
