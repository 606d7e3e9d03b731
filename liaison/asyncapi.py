"""`GET /asyncapi.json`: the AsyncAPI 3.0 document of the two WebSocket protocols, signaling (on the
API's route and on the dedicated port) and events, built from the wire shapes the code uses
(signaling.wire, events.wire), so it cannot drift from them."""

from typing import Any

from fastapi import APIRouter, Request
from pydantic import TypeAdapter

import events.wire
import signaling.wire as signaling_wire
from consults.access import EVENT_VIEWS

router = APIRouter(tags=["operations"])
ASYNCAPI = "3.0.0"
REF = "#/components/schemas/{model}"
SIGNALING = """WebRTC signaling for a consult's call. Send `join` with the call token of
`POST /api/v1/consults/{id}/call-token` first (never a token in the URL: such a handshake is
refused with HTTP 403). The newcomer offers: on `joined` it sends an `offer` to every peer in
`peers`; peers already there answer. Glare (two peers offering to each other: joins at once on
two nodes, each seeing the other present) is settled by `peer_id`: the lower id's offer wins; the
other peer drops its own offer and answers. Keepalive is WebSocket protocol pings, which browsers answer by
themselves; `ping` is optional. A peer whose link drops is shown `reconnecting` (`peer-state`, and
in a newcomer's `joined.peers`) for the grace period, does not count toward the room limit, and what
is sent to it is held for it and told to the sender (`held`)."""
EVENTS = """Live events for the signed-in user: send `auth` first, then receive `event` frames;
reconnect with `last_event_id` to receive everything after it, exactly once, in order."""


def _closes(codes: dict[int, str]) -> str:
    return "\n".join(f"- `{code}`: {meaning}" for code, meaning in codes.items())


def _errors(codes: dict[str, str]) -> str:
    return "\n".join(f"- `{code}`: {meaning}" for code, meaning in codes.items())


def _payload(shape: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """A shape's JSON Schema, its nested shapes moved to components.schemas (as the document refers to them)."""
    schema = TypeAdapter(shape).json_schema(ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    return schema


def _messages(prefix: str, shapes: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    return {
        f"{prefix}.{name}": {
            "name": name,
            "summary": (shape.__doc__ or name).split("\n")[0],
            "contentType": "application/json",
            "payload": _payload(shape, schemas),
        }
        for name, shape in shapes.items()
    }


def _channel(address: str, server: str, prefix: str, names: list[str], about: str) -> dict[str, Any]:
    return {
        "address": address,
        "servers": [{"$ref": f"#/servers/{server}"}],
        "messages": {name: {"$ref": f"#/components/messages/{prefix}.{name}"} for name in names},
        "description": about,
    }


def _operations(channel: str, client: list[str], server: list[str]) -> dict[str, Any]:
    """What the server receives from clients, and what it sends them, on one channel."""

    def op(action: str, names: list[str], summary: str) -> dict[str, Any]:
        refs = [{"$ref": f"#/channels/{channel}/messages/{n}"} for n in names]
        return {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel}"},
            "summary": summary,
            "messages": refs,
        }

    return {
        f"{channel}.fromClient": op("receive", client, "What a client sends"),
        f"{channel}.toClient": op("send", server, "What the server sends a client"),
    }


def document(*, version: str, host: str, signaling_port: int | None) -> dict[str, Any]:
    """The AsyncAPI document, with servers named for `host` (the API's host:port)."""
    schemas: dict[str, Any] = {}
    sw, ew = signaling_wire, events.wire
    messages = _messages("signaling", {**sw.CLIENT, **sw.SERVER}, schemas) | _messages(
        "events", {**ew.CLIENT, **ew.SERVER}, schemas
    )
    event = messages["events.event"]["payload"]["properties"]["event"]
    event["description"] = "One of: " + ", ".join(f"`{name}`" for name in EVENT_VIEWS)
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    port = f"{hostname}:{signaling_port}" if signaling_port else f"{hostname}:{{port}}"
    sig_names, sig_client, sig_server = list(sw.CLIENT | sw.SERVER), list(sw.CLIENT), list(sw.SERVER)
    about = (
        f"{SIGNALING}\n\nError codes:\n{_errors(sw.ERROR_CODES)}\n\nClose codes:\n{_closes(sw.CLOSE_CODES)}"
    )
    events_about = (
        f"{EVENTS}\n\nError codes:\n{_errors(ew.ERROR_CODES)}\n\nClose codes:\n{_closes(ew.CLOSE_CODES)}"
    )
    dedicated: dict[str, Any] = {"host": port, "protocol": "ws", "description": "LIAISON_SIGNALING_PORT"}
    if not signaling_port:
        dedicated["variables"] = {"port": {"description": "LIAISON_SIGNALING_PORT (not set on this node)"}}
    return {
        "asyncapi": ASYNCAPI,
        "info": {
            "title": "Liaison WebSockets",
            "version": version,
            "description": 'The signaling and events WebSockets of Liaison (see README, "Calls").',
        },
        "defaultContentType": "application/json",
        "servers": {
            "api": {"host": host, "protocol": "ws", "description": "The API's own port"},
            "signaling": dedicated,
        },
        "channels": {
            "signaling": _channel("/api/v1/signaling", "api", "signaling", sig_names, about),
            "signalingPort": _channel("/", "signaling", "signaling", sig_names, about),
            "events": _channel("/api/v1/events", "api", "events", list(ew.CLIENT | ew.SERVER), events_about),
        },
        "operations": _operations("signaling", sig_client, sig_server)
        | _operations("signalingPort", sig_client, sig_server)
        | _operations("events", list(ew.CLIENT), list(ew.SERVER)),
        "components": {"messages": messages, "schemas": schemas},
    }


@router.get("/asyncapi.json", operation_id="getAsyncApiDocument")
async def asyncapi(request: Request) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the signaling and events WebSockets."""
    return document(
        version=request.app.version,
        host=request.headers.get("host") or "localhost",
        signaling_port=request.app.state.settings.signaling_port,
    )
