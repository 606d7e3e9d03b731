"""Every WebSocket message a test sends or receives is checked against /asyncapi.json.

`install()` wraps the `websockets` client connection (what tests/live.py, the signaling and events
tests and signaling.peers.client all use): each JSON frame on a signaling or events socket is
validated (jsonschema, Draft 7, as AsyncAPI schemas are) against the message of the document whose
`type` it names, in its direction. A mismatch is recorded, and the test fails at teardown
(tests/conftest.py). A test that sends malformed frames on purpose is marked `invalid_frames`: what
it sends is not checked, what it receives still is."""

import functools
import json
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from websockets.asyncio.client import ClientConnection

from liaison.asyncapi import document

URI = "urn:liaison:asyncapi"
# The socket's path -> its channel in the document (the dedicated port serves both paths).
CHANNELS = {"/api/v1/signaling": "signaling", "/": "signalingPort", "/api/v1/events": "events"}


def _types(payload: dict) -> list[str]:
    kind = payload["properties"]["type"]
    return [kind["const"]] if "const" in kind else list(kind.get("enum", []))


@dataclass
class Checker:
    doc: dict[str, Any]
    violations: list[str] = field(default_factory=list)
    checked: int = 0
    check_sent: bool = True

    def __post_init__(self) -> None:
        registry = Registry().with_resource(URI, Resource(self.doc, DRAFT7))
        self._by: dict[tuple[str, str, str], list[tuple[str, Draft7Validator]]] = {}
        for op in self.doc["operations"].values():
            channel = op["channel"]["$ref"].rsplit("/", 1)[1]
            for ref in op["messages"]:
                name = ref["$ref"].rsplit("/", 1)[1]
                target = self.doc["channels"][channel]["messages"][name]["$ref"].removeprefix("#")
                payload = self.doc["components"]["messages"][target.rsplit("/", 1)[1]]["payload"]
                validator = Draft7Validator({"$ref": f"{URI}#{target}/payload"}, registry=registry)
                for kind in _types(payload):
                    self._by.setdefault((channel, op["action"], kind), []).append((name, validator))

    def check(self, channel: str, action: str, frame: str | bytes) -> list[str]:
        """What is wrong with one frame (`action`: the server's: `receive` from a client, `send` to it)."""
        try:
            message = json.loads(frame)
        except (ValueError, RecursionError):
            return [f"not JSON: {frame[:80]!r}"]
        kind = message.get("type") if isinstance(message, dict) else None
        candidates = self._by.get((channel, action, kind), []) if isinstance(kind, str) else []
        if not candidates:
            return [f"no {action} message of type {kind!r} on {channel}: {str(message)[:200]}"]
        self.checked += 1
        problems = []
        for name, validator in candidates:
            errors = [
                f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(message)
            ]
            if not errors:
                return []
            problems.append(f"{name}: {'; '.join(errors)[:300]}")
        return [f"{channel} {action} {str(message)[:200]}: {' | '.join(problems)}"]

    def seen(self, conn: ClientConnection, action: str, frame: Any) -> None:
        channel = CHANNELS.get(conn.request.path.partition("?")[0]) if conn.request is not None else None
        if channel is None or not isinstance(frame, str | bytes):
            return
        if action == "receive" and not self.check_sent:  # a malformed frame sent on purpose
            return
        self.violations += self.check(channel, action, frame)


CHECKER = Checker(document(version="test", host="127.0.0.1:8000", signaling_port=None))


def install() -> None:
    """Wrap ClientConnection.send and .recv once for the test session."""
    send, recv = ClientConnection.send, ClientConnection.recv
    if getattr(send, "checked", False):
        return

    @functools.wraps(send)
    async def checked_send(self: ClientConnection, message: Any, *args: Any, **kwargs: Any) -> None:
        CHECKER.seen(self, "receive", message)  # the server receives what a client sends
        await send(self, message, *args, **kwargs)

    @functools.wraps(recv)
    async def checked_recv(self: ClientConnection, *args: Any, **kwargs: Any) -> Any:
        frame = await recv(self, *args, **kwargs)
        CHECKER.seen(self, "send", frame)
        return frame

    checked_send.checked = True  # type: ignore[attr-defined]
    ClientConnection.send, ClientConnection.recv = checked_send, checked_recv  # type: ignore[method-assign]
