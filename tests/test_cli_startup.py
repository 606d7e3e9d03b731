"""What the command line says when it cannot start, run as an operator would: one line per problem,
naming the setting or the store and its address, exit 2, never a traceback; and `liaison check`."""

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import PG_ADMIN_URL, REDIS_URL
from tests.live import free_port
from tests.test_cli import liaison


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"


BAD = {  # each setting, and what its line must say
    "LIAISON_DB_POOL_SIZE": ("lots", "(got 'lots')"),
    "LIAISON_PORT": ("99999999999999999999", "less than or equal to 65535"),
    "LIAISON_ENVIRONMENT": ("staging", "'development', 'test' or 'production'"),
    "LIAISON_ACCESS_TOKEN_TTL": ("3600", "less than or equal to 900"),
    "LIAISON_ESCALATION_WORKER": ("maybe", "valid boolean"),
}


def test_each_bad_setting_is_one_line_naming_it(sqlite_url):
    result = liaison(sqlite_url, "check", **{name: value for name, (value, _) in BAD.items()})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert len(lines) == len(BAD), result.stderr
    for line, (name, (_, says)) in zip(sorted(lines), sorted(BAD.items()), strict=True):
        assert line.startswith(f"liaison: bad setting: {name}: ") and says in line, line


@pytest.mark.parametrize(
    ("value", "says"), [("https://a.example", "not valid JSON"), ('["https://a.example/"]', "trailing slash")]
)
def test_a_list_setting_that_is_not_json_or_not_valid_is_named(sqlite_url, value, says):
    line = one_line(result := liaison(sqlite_url, "check", LIAISON_CORS_ORIGINS=value))
    assert (
        result.returncode == 2
        and line.startswith("liaison: bad setting: LIAISON_CORS_ORIGINS: ")
        and says in line
    )


@pytest.mark.parametrize("command", ["serve", "migrate"])
def test_commands_stop_on_a_bad_setting_before_doing_anything(sqlite_url, command):
    result = liaison(sqlite_url, command, LIAISON_DB_POOL_SIZE="x")
    assert result.returncode == 2 and "LIAISON_DB_POOL_SIZE" in one_line(result)


def test_a_weak_secret_is_named_and_never_echoed(sqlite_url):
    result = liaison(sqlite_url, "check", LIAISON_ENVIRONMENT="production", LIAISON_JWT_SECRET="hunter2-typo")
    line = one_line(result)
    assert result.returncode == 2 and "LIAISON_JWT_SECRET must be at least 32 bytes" in line
    assert "hunter2" not in result.stderr + result.stdout


def test_an_unreachable_database_is_one_line_naming_it():
    port = free_port()  # nothing listens there
    url = f"postgresql+asyncpg://postgres:s3cret@127.0.0.1:{port}/liaison"
    for command in ("migrate", "check"):
        result = liaison(url, command)
        line = result.stdout.strip().splitlines()[1] if command == "check" else one_line(result)
        assert result.returncode == (1 if command == "check" else 2), (command, result.stderr)
        assert f"cannot connect to the database at postgresql+asyncpg://postgres:***@127.0.0.1:{port}" in line
        assert "s3cret" not in result.stdout + result.stderr and "Traceback" not in result.stderr


def test_a_database_that_does_not_exist_is_named():
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/liaison_no_such_database"
    result = liaison(url, "migrate")
    if "ConnectionRefused" in result.stderr:
        pytest.skip("PostgreSQL is not answering")
    assert result.returncode == 2 and 'database "liaison_no_such_database" does not exist' in one_line(result)


def test_a_sqlite_file_in_a_missing_directory_is_named(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'nowhere' / 'liaison.db'}"
    result = liaison(url, "serve")
    assert result.returncode == 2 and "does not exist (LIAISON_DATABASE_URL)" in one_line(result)


def test_check_passes_on_a_migrated_database_and_reachable_redis(sqlite_url):
    assert liaison(sqlite_url, "migrate").returncode == 0
    result = liaison(sqlite_url, "check", LIAISON_REDIS_URL=REDIS_URL)
    if "redis: FAILED" in result.stdout:
        pytest.skip(f"Redis is not answering at {REDIS_URL}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "database: ok" in result.stdout and "redis: ok" in result.stdout


def test_check_fails_on_an_unmigrated_database_and_unreachable_redis(sqlite_url):
    port = free_port()
    result = liaison(sqlite_url, "check", LIAISON_REDIS_URL=f"redis://:pw@127.0.0.1:{port}/0")
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("settings: ok")
    assert lines[1].startswith("database: FAILED") and "run `liaison migrate`" in lines[1]
    assert lines[2] == lines[2].split("\n")[0] and lines[2].startswith(
        f"redis: FAILED: cannot reach Redis at redis://:***@127.0.0.1:{port}/0"
    )


def test_version(sqlite_url):
    from importlib.metadata import version

    result = liaison(sqlite_url, "--version")
    assert result.returncode == 0 and result.stdout.strip() == f"liaison {version('liaison')}"


def test_serve_with_its_stores_away_warns_in_one_line_each_and_serves_not_ready():
    """As documented (README, Under faults): a node started while its stores are down comes up."""
    db_port, redis_port, port = free_port(), free_port(), free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")} | {
        "LIAISON_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{db_port}/liaison",
        "LIAISON_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "LIAISON_ESCALATION_WORKER": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "liaison", "serve", "--port", str(port)],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = _wait_for_health(port)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=30)
    assert ready is not None and ready.status_code == 503, stderr
    warnings = [line for line in stderr.splitlines() if line.startswith("liaison serve: warning: ")]
    assert len(warnings) == 2, stderr
    assert (
        f"cannot connect to the database at postgresql+asyncpg://postgres@127.0.0.1:{db_port}" in warnings[0]
    )
    assert f"cannot reach Redis at redis://127.0.0.1:{redis_port}/0" in warnings[1]
    assert "Traceback" not in stderr


def _wait_for_health(port: int) -> httpx.Response | None:
    """/readyz once /healthz answers (no bound on how long the loaded machine takes: 60 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        except httpx.TransportError:
            time.sleep(0.2)
    return None
