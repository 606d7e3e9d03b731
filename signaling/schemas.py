"""Wire shapes of a call token answer and of call records."""

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel


class IceServer(BaseModel):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class CallTokenOut(BaseModel):
    token: str
    room: str
    signaling_url: str
    ice_servers: list[IceServer]
    expires_at: datetime


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite gives naive UTC back


class AttendanceOut(BaseModel):
    user_id: uuid.UUID
    display_name: str
    peer_id: str
    joined_at: datetime
    left_at: datetime | None
    seconds: float  # until left_at, or until now for someone still in the call

    @classmethod
    def of(cls, row, user, now: datetime) -> "AttendanceOut":
        joined, left = _utc(row.joined_at), row.left_at and _utc(row.left_at)
        return cls(
            user_id=row.user_id,
            display_name=user.display_name or user.username,
            peer_id=row.peer_id,
            joined_at=joined,
            left_at=left,
            seconds=round(((left or now) - joined).total_seconds(), 1),
        )


class CallOut(BaseModel):
    id: uuid.UUID
    consult_id: uuid.UUID
    started_at: datetime
    ended_at: datetime | None  # None while the call goes on
    attendance: list[AttendanceOut]

    @classmethod
    def of(cls, record: tuple) -> "CallOut":
        call, rows = record
        now = datetime.now(UTC)
        return cls(
            id=call.id,
            consult_id=call.consult_id,
            started_at=_utc(call.started_at),
            ended_at=call.ended_at and _utc(call.ended_at),
            attendance=[AttendanceOut.of(a, u, now) for a, u in rows],
        )
