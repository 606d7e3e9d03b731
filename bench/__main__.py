"""`make bench`: every benchmark, one table. Needs PostgreSQL and Redis on 127.0.0.1."""

import asyncio
import logging

from bench import consults, signaling, signaling_nodes
from bench.common import table


async def main() -> None:
    rows = []
    for module in (consults, signaling, signaling_nodes):
        rows.extend(await module.run())
    print(table(rows))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
