"""The signaling protocol's messages as JSON shapes: what `/asyncapi.json` publishes and the tests
check every frame against. Typed dicts, not models: the hot path keeps its hand-written checks
(messages.py), and these take their limits from there, so the document and the parser share them."""

from typing import (
    Annotated,
    Literal,
    NotRequired,  # pydantic reads typing.TypedDict only from 3.12
)

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from signaling.core.messages import MAX_CANDIDATE, MAX_ID, MAX_SDP, MAX_UFRAG

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID)]
Sdp = Annotated[str, Field(min_length=1, max_length=MAX_SDP, pattern="^v=0")]
# An empty candidate string is the end-of-candidates marker browsers send.
CandidateLine = Annotated[str, Field(max_length=MAX_CANDIDATE, pattern="^(candidate:|$)")]
Mid = Annotated[str, Field(max_length=MAX_ID)] | None
MLineIndex = Annotated[int, Field(ge=0, lt=1024)] | None
Ufrag = Annotated[str, Field(max_length=MAX_UFRAG)] | None
STRICT = ConfigDict(extra="forbid")

# Every `code` an `error` message of the signaling socket can carry, and what it means.
ERROR_CODES: dict[str, str] = {
    "bad_json": "the frame is not JSON",
    "bad_message": "not an object, or a field is missing, of the wrong type or too long",
    "unknown_type": "no such message type",
    "bad_sdp": "an offer or answer whose `sdp` does not start with `v=0`",
    "bad_candidate": "a candidate whose fields are not as a browser's RTCIceCandidate gives them",
    "join_first": "the first message was neither `join` nor `resume` (closed, 1008)",
    "join_timeout": "no `join` within LIAISON_SIGNALING_JOIN_TIMEOUT (closed, 1008)",
    "invalid_token": "the call token is not valid, or expired (closed, 1008)",
    "token_used": "the call token was spent by an earlier join (closed, 1008)",
    "room_full": "the call holds LIAISON_SIGNALING_MAX_PEERS connected peers; the token is not spent (closed, 1008); on a resume: the room filled meanwhile, and the peer has left",
    "too_many_connections": "the user has LIAISON_SIGNALING_CONNECTIONS_PER_USER sockets open; the token is not spent (closed, 1008)",
    "call_closed": "the call ended for this peer: consult closed, agreement ended, reassigned, signed out or disabled (closed, 1000; 1008 on a join)",
    "resume_failed": "nothing to resume here: grace over, unknown secret, or the peer is on another node (closed, 1008)",
    "already_joined": "a `join` or `resume` on a connection that has joined",
    "unknown_peer": "`to` names no peer of this call",
    "peer_buffer_full": "`to` is reconnecting and what is held for it is at LIAISON_SIGNALING_BUFFER_MESSAGES",
    "rate_limited": "over LIAISON_SIGNALING_RATE_PER_SECOND: this message was dropped (closed, 1008, past the burst)",
    "too_large": "a message over LIAISON_SIGNALING_MAX_MESSAGE_BYTES (closed, 1009)",
    "fabric_unavailable": "Redis does not answer: the join cannot be decided (closed, 1008)",
    "unavailable": "the database does not answer: try again (closed, 1013)",
}
# Close codes the server uses, and what a client should do.
CLOSE_CODES: dict[int, str] = {
    1000: "left: after `leave`, a resume on another connection, or `call_closed`; do not resume",
    1001: "the server is shutting down: join again (on another node) with a new call token",
    1008: "refused (see the `error` sent before it); the connection did not join or may not go on",
    1009: "a message over the size limit",
    1011: "an unexpected server error: resume within the grace period",
    1012: "the node is restarting (uvicorn, on the API's route): join again with a new call token",
    1013: "a store is away: try again later (resume, or join with a new token)",
}


@with_config(STRICT)
class Join(TypedDict):
    """The first message: join the call the token names."""

    type: Literal["join"]
    token: Annotated[str, Field(min_length=1, max_length=8192)]


@with_config(STRICT)
class Resume(TypedDict):
    """The first message on a new connection after a lost link: the `resume` secret of `joined`."""

    type: Literal["resume"]
    resume: Annotated[str, Field(min_length=1, max_length=128)]


@with_config(STRICT)
class Description(TypedDict):
    """An offer or answer for the peer `to`."""

    type: Literal["offer", "answer"]
    to: Id
    sdp: Sdp


@with_config(STRICT)
class Candidate(TypedDict):
    """An ICE candidate for the peer `to`, flat, as RTCIceCandidate.toJSON() gives it."""

    type: Literal["candidate"]
    to: Id
    candidate: CandidateLine
    sdpMid: NotRequired[Mid]
    sdpMLineIndex: NotRequired[MLineIndex]
    usernameFragment: NotRequired[Ufrag]


@with_config(STRICT)
class Bare(TypedDict):
    """`leave` (the peer has left, at once) or `ping` (answered `pong`; optional: protocol pings keep a link alive)."""

    type: Literal["leave", "ping"]


@with_config(STRICT)
class PeerEntry(TypedDict):
    """A peer as the others are told of it."""

    peer_id: Id
    user_id: str
    role: NotRequired[
        str
    ]  # requester, assignee, the invited role (interpreter, specialist, ...), precall, echo
    name: NotRequired[str]
    state: NotRequired[Literal["connected", "reconnecting"]]  # in `joined.peers`: its link, now


@with_config(STRICT)
class IceServer(TypedDict):
    urls: list[str]
    username: NotRequired[str]
    credential: NotRequired[str]


@with_config(STRICT)
class Joined(TypedDict):
    """The answer to `join` or `resume`: this peer's id and resume secret, and who else is in the call."""

    type: Literal["joined"]
    peer_id: Id
    resume: str
    room: str
    peers: list[PeerEntry]
    resumed: NotRequired[Literal[True]]
    ice_servers: list[IceServer]


@with_config(STRICT)
class PeerChange(TypedDict):
    """A peer came (`peer-joined`) or left (`peer-left`)."""

    type: Literal["peer-joined", "peer-left"]
    peer_id: Id
    user_id: str
    role: NotRequired[str]
    name: NotRequired[str]


@with_config(STRICT)
class PeerState(TypedDict):
    """A peer's link: `reconnecting` (lost; it keeps its place for the grace period) or `connected` (back)."""

    type: Literal["peer-state"]
    peer_id: Id
    user_id: str
    role: NotRequired[str]
    name: NotRequired[str]
    state: Literal["connected", "reconnecting"]


Relayed = TypedDict("Relayed", {"type": Literal["offer", "answer"], "from": Id, "sdp": Sdp})
Relayed.__doc__ = "An offer or answer from the peer `from`."
RelayedCandidate = TypedDict(
    "RelayedCandidate",
    {
        "type": Literal["candidate"],
        "from": Id,
        "candidate": CandidateLine,
        "sdpMid": Mid,
        "sdpMLineIndex": MLineIndex,
        "usernameFragment": NotRequired[Ufrag],
    },
)
RelayedCandidate.__doc__ = "An ICE candidate from the peer `from`, as it sent it."
with_config(STRICT)(Relayed)
with_config(STRICT)(RelayedCandidate)


@with_config(STRICT)
class Held(TypedDict):
    """To the sender of an offer, answer or candidate whose peer `to` is reconnecting: the message is
    held for it, delivered in order if it resumes within the grace period, dropped when it leaves."""

    type: Literal["held"]
    to: Id
    kind: Literal["offer", "answer", "candidate"]
    state: Literal["reconnecting"]


@with_config(STRICT)
class Error(TypedDict):
    """Something the server will not act on; `code` is stable."""

    type: Literal["error"]
    code: Literal[tuple(ERROR_CODES)]  # type: ignore[valid-type]
    message: str


@with_config(STRICT)
class Pong(TypedDict):
    """The answer to `ping`."""

    type: Literal["pong"]


# (message name, schema, who sends it): what the document lists, in this order.
CLIENT = {"join": Join, "resume": Resume, "description": Description, "candidate": Candidate, "bare": Bare}
SERVER = {
    "joined": Joined,
    "peerChange": PeerChange,
    "peerState": PeerState,
    "relayed": Relayed,
    "relayedCandidate": RelayedCandidate,
    "held": Held,
    "error": Error,
    "pong": Pong,
}
