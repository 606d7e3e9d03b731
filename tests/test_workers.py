"""`liaison serve --workers 2` (liaison/workers.py): each worker listens on the port itself, so the
kernel spreads connections over them; a port already taken stops the node at once."""

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from api.migrate import upgrade
from tests.conftest import REDIS_URL, make_settings
from tests.live import Node


def _sockets(port: int) -> dict[int, str]:
    """inode → TCP state of every IPv4 socket whose local port is `port`."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            found[int(fields[9])] = fields[3]  # 0A: listening, 01: established
    return found


def _held_by(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _workers(pid: int, port: int) -> list[int]:
    """The node's children that listen on the port (not, say, multiprocessing's resource tracker)."""
    listening = {i for i, state in _sockets(port).items() if state == "0A"}
    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [c for c in children if _held_by(c) & listening]


async def test_connections_are_spread_over_the_workers(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    await upgrade(url)
    node = await Node(make_settings(url, REDIS_URL), workers=2, log=tmp_path / "node.log").start()
    try:
        for _ in range(200):  # both workers listening: each has a socket of its own on the port
            if list(_sockets(node.port).values()).count("0A") == 2:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"not two listening sockets: {_sockets(node.port)}")
        clients = [httpx.AsyncClient(base_url=f"http://{node.host}") for _ in range(32)]
        try:
            answers = await asyncio.gather(*(c.get("/healthz") for c in clients))  # 32 connections, kept
            assert {a.status_code for a in answers} == {200}
            established = {i for i, state in _sockets(node.port).items() if state == "01"}
            per_worker = [len(_held_by(w) & established) for w in _workers(node.proc.pid, node.port)]
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))
    finally:
        node.stop()
    assert len(per_worker) == 2 and sum(per_worker) == 32, per_worker
    # Spread by the kernel's hash: fewer than 4 of 32 on either worker has odds of 3 in a million.
    assert min(per_worker) >= 4, per_worker


def test_a_port_already_taken_stops_the_node_at_once(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")} | {
            "LIAISON_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'w.db'}",
            "LIAISON_REDIS_URL": REDIS_URL,
            "LIAISON_ENVIRONMENT": "test",
            "LIAISON_JWT_SECRET": "w" * 40,
        }
        subprocess.run([sys.executable, "-m", "liaison", "migrate"], env=env, check=True, timeout=60)
        done = subprocess.run(
            [sys.executable, "-m", "liaison", "serve", "--workers", "2", "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    # (A supervisor restarting workers that each fail to bind would never return: the timeout.)
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr, done.stderr[-2000:]
