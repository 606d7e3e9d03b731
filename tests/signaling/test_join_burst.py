"""A burst of joins on a loaded machine: Redis is healthy, so none may be refused `fabric_unavailable`.

Each join is one script on the fabric's lane (signaling.fabric.lane); a burst past the lane's idle
connections opens new ones, and on a busy machine a connect waits its turn on the event loop. (With
the client's 1 s connect timeout still on the lane's connections, this burst was refused in part.)"""

import asyncio
import contextlib
import json
import os
import uuid
from collections import Counter

import pytest
import websockets

from signaling.calls import tokens
from tests.conftest import make_settings, reset_env
from tests.live import cpu_hog, serve

scaled = pytest.mark.parametrize("env", ["scaled"], indirect=True)
ROOMS, PER_ROOM = 24, 5  # 120 joins, each room one short of the default limit of 6
# Busy loops outnumbering the cores: the server's process gets a fraction of one, as beside other work.
HOGS = 4 * (os.cpu_count() or 1)


def _mint(app) -> list[str]:
    """A call token for each join, every one a user of its own (the per-user limit is not at stake)."""
    return [
        tokens.issue(app.state.auth, user_id=uuid.uuid4(), org_id=uuid.uuid4(), room=room, consult_id=None)[0]
        for room in (f"burst-{r}" for r in range(ROOMS))
        for _ in range(PER_ROOM)
    ]


async def _open(stack: contextlib.AsyncExitStack, url: str):
    return await stack.enter_async_context(websockets.connect(url, compression=None, open_timeout=30))


async def _first_answer(ws, token: str) -> str:
    """`joined`, or the code of the error the join was refused with."""
    await ws.send(json.dumps({"type": "join", "token": token}))
    got = json.loads(await asyncio.wait_for(ws.recv(), 30))
    return got["type"] if got["type"] != "error" else got["code"]


@scaled
async def test_a_burst_of_joins_on_a_loaded_machine_is_all_admitted(env):
    await reset_env(env)
    settings = make_settings(env["database_url"], env["redis_url"], escalation_worker=False)
    async with serve(settings) as (app, host), contextlib.AsyncExitStack() as sockets:
        minted, url = _mint(app), f"ws://{host}/api/v1/signaling"
        with cpu_hog(HOGS):
            # Every socket open first, then every join at once: the server admits them all together.
            socks = await asyncio.gather(*(_open(sockets, url) for _ in minted))
            answers = await asyncio.gather(*map(_first_answer, socks, minted))
    assert Counter(answers) == {"joined": ROOMS * PER_ROOM}
