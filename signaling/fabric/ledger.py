"""What a node needs to know, before letting a call token in, that the token itself cannot say:
that it was not spent already, and that nothing ended its calls since it was issued.

A call token is issued after the database said yes (a participant, a consult open for calls, an
agreement in force); it lives five minutes at most, and never past its agreement's end. What can
take that yes back within those minutes (a consult cancelled or completed, an agreement revoked
or suspended, a specialist reassigned, a user disabled) marks the room or the user here *before*
its transaction commits, and keeps the mark for a token's whole lifetime. A join whose room and
user bear no mark is decided here, in one step, without the database. A marked one, or one whose
token is older than the ledger's memory (`since`: the ledger started, or Redis lost its data), is
checked against the database (signaling.service.may_join), as is every join a close order raced.

In one process the ledger is memory; with Redis, keys that every node shares. Times compared
across nodes (a token's `iat`, Redis's clock) allow for `leeway` seconds of skew."""

import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.errors import Unavailable
from signaling.core.admission import CallGrant, Verdict
from signaling.core.messages import ProtocolError
from signaling.fabric.lua import Script, arg, key, script

log = logging.getLogger("liaison.signaling")
MAX_TOKEN_LIFE = 300  # settings cap call_token_ttl here; a mark must outlive any token issued before it


class LocalLedger:
    """One process: the ledger is this process's memory, which begins when it starts."""

    def __init__(self, *, leeway: int) -> None:
        self.horizon = MAX_TOKEN_LIFE + leeway + 60
        self.leeway = leeway
        self.since = time.time()  # wall clock: compared with tokens' `iat`
        self._spent: dict[str, float] = {}  # token id -> when it can be forgotten
        self._marks: dict[str, float] = {}  # "room:<room>" / "user:<id>" -> until

    async def start(self) -> None:
        return None

    async def end(self, *, rooms: tuple[str, ...] = (), users: tuple[str, ...] = ()) -> None:
        """Calls in these rooms, and of these users, were ended: tokens issued before now are rechecked."""
        until = time.time() + self.horizon
        self._forget(time.time())
        for mark in _keys(rooms, users):
            self._marks[mark] = until

    async def admit(self, grant: CallGrant) -> Verdict:
        """Spend the token (refused if spent) and say whether the database must decide."""
        now = time.time()
        self._forget(now)
        if grant.jti in self._spent:
            raise _used()
        self._spent[grant.jti] = grant.exp + self.leeway
        marked = any(self._marks.get(k, 0) > now for k in _keys((grant.room,), (grant.user_id,)))
        return Verdict.RECHECK if marked or grant.iat < self.since + self.leeway else Verdict.FRESH

    def _forget(self, now: float) -> None:
        if len(self._spent) + len(self._marks) > 10_000:  # amortized: sweep only when it has grown
            self._spent = {k: v for k, v in self._spent.items() if v > now}
            self._marks = {k: v for k, v in self._marks.items() if v > now}


@script(
    body="""
local verdict = 0
if redis.call('SET', spent_key, '1', 'NX', 'EX', token_ttl) then
  local since = redis.call('GET', since_key)
  if not since then  -- Redis lost its data (or never had it): the memory starts now
    since = redis.call('TIME')[1]
    redis.call('SET', since_key, since)
  end
  verdict = 1
  if tonumber(iat) < tonumber(since) + tonumber(leeway) or redis.call('EXISTS', room_mark, user_mark) > 0 then
    verdict = 2
  end
end
"""
)
class LedgerStep(Script):
    """The ledger's step of a join, a part of the fabric's admission script (signaling.fabric.scripts),
    which also answers the room's members in the same round trip. Leaves `verdict`: 0 spent already,
    1 fresh, 2 recheck."""

    spent_key: str = key()  # set once, for the token's remaining life: its first use
    room_mark: str = key()  # present while calls in the room were ended (RedisLedger.end)
    user_mark: str = key()  # the same for the user
    since_key: str = key()  # when the ledger's memory began (Redis's clock, seconds)
    token_ttl: int = arg()  # seconds the spent mark is kept
    iat: int = arg()  # the token's issue time (epoch seconds)
    leeway: int = arg()  # seconds of clock skew allowed between nodes and Redis


class RedisLedger:
    """Several nodes: spent tokens, marks and `since` are Redis keys (Redis's clock for `since`).
    Admission is one script with the fabric's (RedisFabric.admit)."""

    PREFIX = "liaison:ledger:"

    def __init__(self, redis: Redis, *, leeway: int) -> None:
        self._redis = redis
        self.horizon = MAX_TOKEN_LIFE + leeway + 60
        self.leeway = leeway
        self.since_key = self.PREFIX + "since"

    async def start(self) -> None:
        """Date the ledger's memory from now, unless it already runs (another node started it). With
        Redis away, the first admission dates it instead (the script sets `since` when it is missing)."""
        try:
            seconds, _ = await self._redis.time()
            await self._redis.set(self.since_key, seconds, nx=True)
        except RedisError as exc:
            log.warning(
                "call ledger: Redis is not answering at start (%s); joins wait for it", type(exc).__name__
            )

    async def end(self, *, rooms: tuple[str, ...] = (), users: tuple[str, ...] = ()) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for mark in _keys(rooms, users):
                    pipe.set(self.PREFIX + mark, b"1", ex=self.horizon)
                await pipe.execute()
        except RedisError:
            raise Unavailable(
                "Ending calls needs the signaling store (Redis), which is not answering; nothing was changed",
                store="redis",
            ) from None

    def step(self, grant: CallGrant) -> LedgerStep:
        """The ledger's part of this token's admission script."""
        p = self.PREFIX
        return LedgerStep(
            spent_key=p + "spent:" + grant.jti,
            room_mark=p + "room:" + grant.room,
            user_mark=p + "user:" + grant.user_id,
            since_key=self.since_key,
            token_ttl=max(1, grant.exp - int(time.time()) + self.leeway),
            iat=grant.iat,
            leeway=self.leeway,
        )

    @staticmethod
    def verdict(answer: int) -> Verdict:
        if answer == 0:
            raise _used()
        return Verdict(answer)


def _keys(rooms, users) -> list[str]:
    return [f"room:{r}" for r in rooms] + [f"user:{u}" for u in users]


def _used() -> ProtocolError:
    return ProtocolError("token_used", "This call token was already used; ask for a new one")


def make_ledger(redis: Redis | None, *, leeway: int) -> LocalLedger | RedisLedger:
    return RedisLedger(redis, leeway=leeway) if redis is not None else LocalLedger(leeway=leeway)
