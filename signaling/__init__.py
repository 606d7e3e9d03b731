"""WebRTC signaling: call tokens, rooms, the WebSocket relay across nodes, call records, pre-call checks.

The domain's face is the usual router, schemas, models and service; the rest, lowest first:

- `core/`: no I/O. Wire messages parsed once into typed values, rooms and peers as pure state,
  join admission, the fabric's views of remote peers, rate limits. Tested without sockets or Redis.
- `fabric/`: how a node reaches the others: the local (one process) and Redis fabrics, the call
  ledger, and the Lua scripts, each with its KEYS/ARGV described once (`fabric/scripts.py`).
- `calls/`: a call's life outside the relay: tokens, ICE servers, attendance records, close orders.
- `peers/`: aiortc peers: the shared WebRTC mesh, the pre-call echo and the Python call client.
- `edge/`: the sockets: the server that owns every connection, and the dedicated-port listener.
"""
