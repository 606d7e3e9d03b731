"""The message rate a connection may send: cheap enough for the relay's hot path (liveness is the
WebSocket's protocol pings, kept by the listeners: signaling.edge)."""

import time


class Bucket:
    """Token bucket: `rate` messages a second, up to `burst` at once."""

    __slots__ = ("rate", "burst", "tokens", "at")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True
