"""`liaison serve --workers N`: uvicorn's supervisor over workers that each listen on the port.

uvicorn binds one socket and shares it: every worker waits on it, and whichever wakes first can take
every connection queued then. Clients that keep their connections
(a proxy's upstream pool, an integrator's HTTP client) then stay where they landed: with 64 of them,
one worker of two did 82 % of the work and set the latency while the other idled. Here each worker
binds a socket of its own with SO_REUSEPORT, and the kernel spreads new connections over them.
(As with any SO_REUSEPORT server, a second node of the same user started on the same port joins
the first instead of failing: give each node its own port.)"""

import socket
from typing import Any, cast

import uvicorn
from uvicorn.supervisors import Multiprocess


def _listening(host: str, port: int, backlog: int) -> socket.socket:
    """This worker's own socket on the shared port (run in the worker, as it unpickles its arguments)."""
    sock = _bound(host, port)
    sock.listen(backlog)
    return sock


def _bound(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class _OwnSocket:
    """Stands for a socket in the supervisor; each worker it is handed to binds a fresh one."""

    def __init__(self, host: str, port: int, backlog: int) -> None:
        self.args = (host, port, backlog)

    def __reduce__(self) -> tuple[Any, tuple[str, int, int]]:
        return _listening, self.args


def serve(config: uvicorn.Config) -> None:
    """Run `config.workers` workers on config.host:config.port until told to stop."""
    # Bound without listening: a port already taken fails here, once, not in every worker the
    # supervisor would restart; a socket that does not listen is handed no connection.
    try:
        held = _bound(config.host, config.port)
    except OSError as exc:
        raise SystemExit(f"liaison: cannot listen on {config.host}:{config.port}: {exc.strerror}") from None
    with held:
        share = cast(socket.socket, _OwnSocket(config.host, config.port, config.backlog))
        Multiprocess(config, sockets=[share]).run()
