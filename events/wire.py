"""The events socket's messages as JSON shapes: what `/asyncapi.json` publishes and the tests check
every frame against (the first message is parsed with `AuthMessage` itself)."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict only from 3.12

STRICT = ConfigDict(extra="forbid")

# Every `code` an `error` message of the events socket can carry, and what it means.
ERROR_CODES: dict[str, str] = {
    "auth_required": "the first message was not a valid `auth`, or came too late (closed, 1008)",
    "invalid_token": "the access token is not valid, or expired (closed, 1008)",
    "session_ended": "signed out, disabled, or the token no longer names an active user (closed, 1008)",
    "unavailable": "the database does not answer: reconnect with the last event id (closed, 1013)",
}
CLOSE_CODES: dict[int, str] = {
    1008: "refused or ended (see the `error` sent before it): sign in again",
    1012: "the node is restarting: reconnect (to any node) with your last event id",
    1013: "a store is away: reconnect with your last event id; nothing is lost",
}


class AuthMessage(BaseModel):
    """The first message: who you are, and (reconnecting) the id of the last event you saw."""

    model_config = STRICT
    type: Literal["auth"]
    token: str = Field(max_length=8192)
    last_event_id: int | None = Field(default=None, ge=0)


@with_config(STRICT)
class Ping(TypedDict):
    """Answered `pong`; optional: the server's protocol pings keep the socket alive."""

    type: Literal["ping"]


@with_config(STRICT)
class Ready(TypedDict):
    """Authenticated: the channels you hear; the replay (with `last_event_id`) follows."""

    type: Literal["ready"]
    user_id: str
    channels: list[str]


@with_config(STRICT)
class Event(TypedDict):
    """One stored event; `id` is its position in the event log (reconnect with the last you saw)."""

    type: Literal["event"]
    id: Annotated[int, Field(ge=1)]
    event: str
    channel: str
    consult_id: str | None
    data: dict[str, Any]
    at: str


@with_config(STRICT)
class Rescoped(TypedDict):
    """Your roles changed: the channels you hear from now on, on this socket."""

    type: Literal["rescoped"]
    channels: list[str]


@with_config(STRICT)
class Error(TypedDict):
    """The socket is refused or ends; `code` is stable."""

    type: Literal["error"]
    code: Literal[tuple(ERROR_CODES)]  # type: ignore[valid-type]
    message: str


@with_config(STRICT)
class Pong(TypedDict):
    """The answer to `ping`."""

    type: Literal["pong"]


CLIENT: dict[str, Any] = {"auth": AuthMessage, "ping": Ping}
SERVER: dict[str, Any] = {"ready": Ready, "event": Event, "rescoped": Rescoped, "error": Error, "pong": Pong}
