"""FHIR tests: every resource served is checked against the R4 models, in their own virtualenv."""

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI

R4_PYTHON = Path(sys.prefix) / "r4" / "bin" / "python"
CHECKER = Path(__file__).with_name("r4_check.py")


class R4:
    """A long-lived checker process: importing the models takes a second, checking one a millisecond."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def check(self, resource: dict) -> None:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(resource).encode() + b"\n")
        await self.proc.stdin.drain()
        answer = (await self.proc.stdout.readline()).decode().strip()
        assert answer == "ok", f"{resource.get('resourceType')} is not valid R4: {answer}"
        for entry in resource.get("entry", []):  # a Bundle's resources, each on its own too
            await self.check(entry["resource"])


@pytest.fixture
async def r4():
    if not R4_PYTHON.exists():
        if IN_CI:
            pytest.fail(f"{R4_PYTHON} is missing: `make install` makes it")
        pytest.skip(f"no R4 checker at {R4_PYTHON}: run `make install`")
    proc = await asyncio.create_subprocess_exec(
        str(R4_PYTHON),
        str(CHECKER),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": ""},
    )
    yield R4(proc)
    assert proc.stdin
    proc.stdin.close()
    await proc.wait()
