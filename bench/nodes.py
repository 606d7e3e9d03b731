"""`liaison serve` nodes in processes of their own, for the benchmarks (bench/ never imports tests/).

A `Node` runs `python -m liaison serve --port P --workers N` with the given settings as LIAISON_*
variables, waits for /healthz, and can tell the CPU its whole process tree has used (the uvicorn
supervisor and its workers), read from /proc."""

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

CLK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc/<pid>/task/*/children)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (the ones still alive), in seconds."""
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK


class Node:
    """`liaison serve` in its own process, as production runs it."""

    def __init__(
        self,
        settings,
        *,
        port: int | None = None,
        workers: int = 1,
        env: dict | None = None,
        command: list[str] | None = None,
    ) -> None:
        """`command`: what to run instead of `python -m liaison serve` (given --port and --workers)."""
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.workers = workers
        environ = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
        for name, value in settings.model_dump().items():
            if value is not None:
                environ[f"LIAISON_{name.upper()}"] = str(value)
        self._env = environ | (env or {})
        self._cmd = (command or [sys.executable, "-m", "liaison", "serve"]) + [
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        self.proc: subprocess.Popen | None = None

    async def start(self) -> "Node":
        self.proc = subprocess.Popen(
            self._cmd, env=self._env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        async with httpx.AsyncClient(base_url=f"http://{self.host}") as c:
            for _ in range(400):
                if self.proc.poll() is not None:
                    break
                try:
                    if (await c.get("/healthz")).status_code == 200:
                        await self._workers_up()
                        return self
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
        self.stop()
        raise RuntimeError(f"node on {self.port} did not start: {self.proc.stderr.read(4000)!r}")

    async def _workers_up(self) -> None:
        """With several workers, the first answer comes from one of them: wait for the others to exist."""
        for _ in range(200):
            if len(self.pids()) >= 1 + (self.workers if self.workers > 1 else 0):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(
            0.5 if self.workers > 1 else 0
        )  # each worker's lifespan (event log, sealer) started

    def pids(self) -> list[int]:
        return tree(self.proc.pid) if self.proc else []

    def cpu(self) -> float:
        """CPU seconds used so far by the node's processes."""
        return cpu_seconds(self.pids())

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def backend_pids(url: str) -> list[int]:
    """The PostgreSQL backends connected to this benchmark's (scratch) database: their CPU is the
    database's share of the work, apart from other databases' on the same server."""
    import asyncpg

    dsn = url.replace("+asyncpg", "")
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await conn.close()
    return [r["pid"] for r in rows]


class CpuMeter:
    """CPU used between `start()` and `stop()` by the nodes' processes and their database backends."""

    def __init__(self, nodes: list[Node], url: str) -> None:
        self.nodes, self.url = nodes, url
        self.server = self.database = 0.0

    async def start(self) -> None:
        self._pg = await backend_pids(self.url)
        self._pg0 = {p: cpu_seconds([p]) for p in self._pg}
        self._node0 = sum(n.cpu() for n in self.nodes)

    async def stop(self) -> None:
        self.server = sum(n.cpu() for n in self.nodes) - self._node0
        pids = set(self._pg) | set(await backend_pids(self.url))
        # a backend that appeared meanwhile counts whole; one that went away is lost (pools keep theirs)
        self.database = sum(
            cpu_seconds([p]) - self._pg0.get(p, 0.0) for p in pids if Path(f"/proc/{p}").exists()
        )
