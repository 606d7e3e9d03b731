"""`liaison serve | migrate | demo | create-admin | audit verify`."""

import asyncio
import logging

import typer

from api.settings import get_settings

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Liaison telemedicine consultation backend."
)
audit_app = typer.Typer(no_args_is_help=True, help="The audit trail.")
app.add_typer(audit_app, name="audit")


@app.command()
def serve(host: str = typer.Option(None), port: int = typer.Option(None), workers: int = 1) -> None:
    """Serve the API on HOST:PORT (settings by default)."""
    import uvicorn

    from liaison.app import uvicorn_options

    s = get_settings()
    if workers > 1 and not s.redis_url:
        # Workers share calls, events, close orders and the call ledger only through Redis.
        typer.echo("Several workers need LIAISON_REDIS_URL: without Redis each worker is alone", err=True)
        raise typer.Exit(2)
    _require_schema(s.database_url)
    uvicorn.run(
        "liaison.asgi:app",
        host=host or s.host,
        port=port or s.port,
        workers=workers,
        log_level="info",
        **uvicorn_options(s),
    )


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
        first_line = (str(exc).splitlines() or [""])[0]
        typer.echo(
            f"liaison serve: warning: cannot read the database schema yet ({type(exc).__name__}: "
            f"{first_line}); serving, not ready until the database answers",
            err=True,
        )
    if warning:
        typer.echo(f"liaison serve: warning: {warning}; serving anyway", err=True)


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


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit hash chain; exit 1 and name the first broken link if it does not hold."""
    from liaison.demo import verify_audit

    report = asyncio.run(verify_audit(get_settings()))
    if report.ok:
        typer.echo(f"audit chain OK: {report.checked} events")
        return
    typer.echo(
        f"audit chain BROKEN at seq {report.broken_seq}: {report.problem} "
        f"({report.checked} events verified before it)",
        err=True,
    )
    raise typer.Exit(1)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app()
