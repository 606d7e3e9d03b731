"""The shipped deploy/ files run by the real programs: openssl, nginx, coturn (Debian packages).

A missing program skips its tests with the reason, except under CI=true, where it fails them
(.ci/run installs the packages)."""

import asyncio
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import IN_CI

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def program(path: str, package: str) -> str:
    """The program's path; skip (fail under CI=true) when it is not installed."""
    found = shutil.which(path)
    if found is None:
        message = f"{path} is not installed (Debian package {package})"
        if IN_CI:
            pytest.fail(f"{message}; under CI=true the deploy tests must run", pytrace=False)
        pytest.skip(message)
    return found


async def until_listening(port: int, proc: subprocess.Popen, output: Callable[[], str]) -> None:
    """Wait until 127.0.0.1:port accepts; fail with the program's `output()` if it exits first."""
    for _ in range(200):
        assert proc.poll() is None, output()
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing accepts on 127.0.0.1:{port} after 10 s")  # output() would block: it runs


@pytest.fixture(scope="session")
def certs(tmp_path_factory) -> Path:
    """A CA and a server certificate for localhost, 127.0.0.1 and liaison.test, by deploy/make-certs.sh."""
    program("openssl", "openssl")
    out = tmp_path_factory.mktemp("certs")
    subprocess.run(
        ["sh", str(DEPLOY / "make-certs.sh"), str(out), "localhost", "127.0.0.1", "liaison.test"],
        check=True,
        capture_output=True,
    )
    return out


def nginx_prefix(directory: Path, certs: Path, **values: str) -> Path:
    """A prefix to run nginx in as any user: the shipped template filled with `values` (ports and
    upstreams), inside a top-level nginx.conf whose pid, logs and temporary files stay in `directory`."""
    values = (
        dict(SERVER_NAME="localhost", TLS_CERT=str(certs / "server.crt"), TLS_KEY=str(certs / "server.key"))
        | values
    )
    filled = fill((DEPLOY / "nginx" / "liaison.conf.template").read_text(), values)
    (directory / "liaison.conf").write_text(filled)
    (directory / "tmp").mkdir(exist_ok=True)
    temps = "\n".join(f"  {kind}_temp_path {directory}/tmp/{kind};" for kind in TEMPS)
    (directory / "nginx.conf").write_text(
        f"worker_processes 1;\npid {directory}/nginx.pid;\nerror_log {directory}/error.log notice;\n"
        f"events {{ worker_connections 512; }}\n"
        f"http {{\n  access_log {directory}/access.log;\n{temps}\n  include {directory}/liaison.conf;\n}}\n"
    )
    return directory / "nginx.conf"


TEMPS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def fill(template: str, values: dict[str, str]) -> str:
    """What the nginx image's envsubst step does: each capitalised placeholder replaced; nginx's own
    lower-case variables left alone. A placeholder without a value is an error here, not a silent gap."""
    return re.sub(r"\$\{([A-Z][A-Z0-9_]*)\}", lambda m: values[m[1]], template)
