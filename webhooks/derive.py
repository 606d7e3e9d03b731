"""What the stored event log means to an org's webhooks, decided without I/O.

The log stores an event once per channel that hears it, so one change may be stored several times
(a message for the requester and the assignee). Each webhook event gets a key that names the change,
not the row, so that its copies make one delivery: a status change is read from the requesting
org's coordinator queue (stored there exactly once), a message by its id, a call by its id and what
happened to it, an escalation (offers made at a level above the consult's first) by the consult
and the level it reached."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from webhooks.schemas import EventType

QUEUE = ("queue.changed", "queue.alert")
OFFER = "offer.created"
SOURCES = (*QUEUE, OFFER, "message.created", "call.started", "call.ended")
STATUS_EVENTS = {
    "offered": EventType.consult_offered,
    "accepted": EventType.consult_accepted,
    "unassigned": EventType.consult_unassigned,
    "completed": EventType.consult_completed,
    "cancelled": EventType.consult_cancelled,
}
ATTACHMENT_FIELDS = ("id", "kind", "media_type", "size")
FIRST_LEVEL = 1  # an offer without a level (none is stored so) counts as the first


@dataclass(frozen=True)
class Derived:
    type: EventType
    key: str  # one delivery per endpoint and key, however many copies of the change the log holds
    position: int
    consult_id: uuid.UUID
    at: datetime
    data: dict[str, Any]


def derive(row: Any, *, created: bool = False, first_level: int | None = None) -> list[Derived]:
    """The webhook events of one stored event (pos, type, consult_id, data, created_at). `created`:
    it is the consult's first status on the queue, stored by the transaction that created it;
    `first_level`: the lowest level the consult was ever offered at."""
    d, cid = row.data, row.consult_id

    def one(type: EventType, key: str, data: dict[str, Any]) -> Derived:
        return Derived(type, key, row.pos, cid, row.created_at, {"consult_id": str(cid)} | data)

    if row.type in QUEUE:
        state = {k: d.get(k) for k in ("status", "level", "assigned_to", "specialty", "urgency")}
        out = [one(EventType.consult_created, f"consult.created:{cid}", state)] if created else []
        if (kind := STATUS_EVENTS.get(d.get("status"))) is not None:
            out.append(one(kind, f"pos:{row.pos}", state))
        return out
    if row.type == OFFER:
        level = d.get("level") or FIRST_LEVEL
        if level <= (first_level or level):
            return []
        escalated = {"level": level, "expires_at": d.get("expires_at")}
        return [one(EventType.consult_escalated, f"consult.escalated:{cid}:{level}", escalated)]
    if row.type == "message.created":
        msg = {"message_id": d.get("message_id"), "author_id": d.get("author_id")}
        # What is attached, never its content; a file's name may name the patient, so it stays home.
        msg["attachments"] = [{k: a.get(k) for k in ATTACHMENT_FIELDS} for a in d.get("attachments", [])]
        return [one(EventType.message_created, f"message.created:{d.get('message_id')}", msg)]
    if row.type in ("call.started", "call.ended"):
        call = {k: d[k] for k in ("call_id", "seconds") if k in d}
        return [one(EventType(row.type), f"{row.type}:{d.get('call_id')}", call)]
    return []


def payload(event: Derived, *, seq: int) -> dict[str, Any]:
    """The body sent: the Standard Webhooks envelope, with the endpoint's sequence so receivers can
    order what retries may deliver out of order, and the event's position in the log."""
    return {
        "type": event.type.value,
        "timestamp": event.at.isoformat(),
        "sequence": seq,
        "position": event.position,
        "data": event.data,
    }
