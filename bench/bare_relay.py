"""The baseline for bench.signaling: a bare `websockets` relay, nothing but forwarding.

`python -m bench.bare_relay PORT` serves ws://127.0.0.1:PORT on the same event loop as Liaison's
node (uvloop) with the same JSON library (stdlib), no per-message compression, the same frame cap
and protocol pings. A client's first message {"type": "join", "id"} names it (answered with
{"type": "joined", "peer_id"}: clients know each other's names); after that every message is parsed and
re-serialized, unchanged, to the connection named by its "to". No auth, no rooms, no stamping.
"""

import asyncio
import json
import sys

import uvloop
from websockets.asyncio.server import serve


async def main(port: int) -> None:
    peers: dict[str, object] = {}

    async def handler(ws) -> None:
        hello = json.loads(await ws.recv())
        name = str(hello["id"])
        await ws.send(json.dumps({"type": "joined", "peer_id": name}))
        peers[name] = ws
        try:
            async for raw in ws:
                msg = json.loads(raw)
                target = peers.get(msg.get("to"))
                if target is not None:
                    await target.send(json.dumps(msg))
        finally:
            if peers.get(name) is ws:
                del peers[name]

    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        max_size=65536,
        ping_interval=20.0,
        ping_timeout=20.0,
        backlog=1024,
    ):
        await asyncio.Future()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
