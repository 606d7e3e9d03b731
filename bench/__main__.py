"""`make bench`: every benchmark, one table. Needs PostgreSQL and Redis on 127.0.0.1 (about 4-7 minutes).

- BENCH_ONLY=consults,reads (a comma-separated list of the names below) runs only those;
- LIAISON_BENCH_DATABASE_URL, LIAISON_BENCH_REDIS_URL: the server to make scratch databases on, and
  the Redis (pick a DB number of your own on a shared machine);
- consults: BENCH_WORKERS (2), BENCH_STEPS (25,50,75,100,150,200,300), BENCH_CLIENT=httpx to load
  through httpx instead of bench.http (to see what the client costs).

`python -m bench.profile create|read [RATE] [SECONDS]` profiles a node's CPU per request (not run here)."""

import asyncio
import logging
import os

from bench import attachments, consults, reads, signaling, signaling_nodes, webhooks
from bench.common import table

MODULES = {
    "attachments": attachments,
    "consults": consults,
    "reads": reads,
    "signaling": signaling,
    "signaling_nodes": signaling_nodes,
    "webhooks": webhooks,
}


def chosen() -> list:
    only = [name.strip() for name in os.environ.get("BENCH_ONLY", "").split(",") if name.strip()]
    unknown = [name for name in only if name not in MODULES]
    if unknown:
        raise SystemExit(
            f"BENCH_ONLY: no benchmark named {', '.join(unknown)} (there are {', '.join(MODULES)})"
        )
    return [MODULES[name] for name in only] if only else list(MODULES.values())


async def main() -> None:
    rows = []
    for module in chosen():
        rows.extend(await module.run())
    print(table(rows))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
