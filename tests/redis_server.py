"""A private redis-server on a free loopback port, for tests that stop and restart Redis: the
machine's shared Redis is never touched."""

import asyncio
import contextlib
import shutil
import subprocess

import pytest
from redis.asyncio import Redis

from tests.live import free_port


class PrivateRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    async def start(self) -> "PrivateRedis":
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = Redis.from_url(self.url)
        try:
            for _ in range(200):
                with contextlib.suppress(Exception):
                    if await client.ping():
                        return self
                await asyncio.sleep(0.025)
        finally:
            await client.aclose()
        raise AssertionError(f"private redis-server on {self.port} did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@contextlib.asynccontextmanager
async def private_redis():
    server = await PrivateRedis().start()
    try:
        yield server
    finally:
        server.stop()
