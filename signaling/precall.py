"""Pre-call check: a server-side aiortc peer in an echo room (filled in by signaling.echo)."""


class PrecallRooms:
    """Rooms a pre-call token was issued for; the echo peer joins them on request."""

    def __init__(self) -> None:
        self.expected: set[str] = set()

    async def expect(self, room: str) -> None:
        self.expected.add(room)

    async def stop(self) -> None:
        self.expected.clear()
