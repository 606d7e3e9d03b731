"""Wire shape of a call token answer."""

from datetime import datetime

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
