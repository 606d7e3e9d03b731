"""The Lua scripts of the Redis signaling fabric: each membership change and each forward is one
atomic step on Redis's own clock. Each script is a description (signaling.fabric.lua): its fields
are its KEYS and ARGV, and the fabric calls it by filling one in."""

from collections.abc import Callable
from dataclasses import field
from typing import TypeVar, dataclass_transform

from signaling.fabric.ledger import LedgerStep
from signaling.fabric.lua import Script, arg, key, part, rest, script

PRELUDE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function bump(key, now)
  local seq = redis.call('HINCRBY', key, '~seq', 1)
  if seq == 1 then  -- a fresh room: start above any sequence an earlier life of the key reached
    seq = now
    redis.call('HSET', key, '~seq', string.format('%d', seq))
  end
  return seq
end
local function announce(channel, room, seq, event, entry)
  redis.call('PUBLISH', channel, cjson.encode({room = room, seq = seq, event = event, peer = entry}))
end
local function members(key, now, me)  -- {seq, live entries of other nodes...}, and how many hold a place
  -- (live and not reconnecting: a peer whose link dropped does not count toward the room's limit)
  local out, live = {tonumber(redis.call('HGET', key, '~seq') or '0')}, 0
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if string.byte(all[i], 1) ~= 126 then
      local e = cjson.decode(all[i + 1])
      if tonumber(e.expires) >= now then
        if e.state ~= 'reconnecting' then live = live + 1 end
        if e.node ~= me then out[#out + 1] = all[i + 1] end
      end
    end
  end
  return out, live
end
local function snapshot(key, now, me)
  return (members(key, now, me))
end
local function enter(key, now, ttl, key_ttl, channel, room, entry, others)  -- the room's new seq
  local e = cjson.decode(entry)
  if redis.call('HEXISTS', key, '~gone:' .. e.peer_id) == 1 then
    -- It left while its Join was on the way (a close order raced the join, on another connection):
    -- entering now would announce a ghost to the other nodes. It stays out, and nothing is said.
    return tonumber(redis.call('HGET', key, '~seq') or '0')
  end
  e.expires = now + tonumber(ttl)
  redis.call('HSET', key, e.peer_id, cjson.encode(e))
  local seq = bump(key, now)
  -- Only nodes with live peers here act on it; one whose peer is still joining learns it from the
  -- snapshot its own join returns.
  if others > 0 then announce(channel, room, seq, 'peer-joined', e) end
  redis.call('PEXPIRE', key, key_ttl)
  return seq
end
"""


T = TypeVar("T")

# The functions PRELUDE defines: no input may take their names.
DEFINED = frozenset({"now_ms", "bump", "announce", "members", "snapshot", "enter"})


# Declared again here: a type checker sees through a decorator factory only one marked itself.
@dataclass_transform(frozen_default=True, field_specifiers=(key, arg, part, rest, field))
def fabric_script(body: str) -> Callable[[type[T]], type[T]]:
    """A script of the fabric: PRELUDE, then its inputs, then `body`."""
    return script(body=body, prelude=PRELUDE, reserved=DEFINED)


@fabric_script(
    """
local now = now_ms()
local out = members(room_key, now, me)
out[1] = enter(room_key, now, ttl_ms, key_ttl_ms, channel, room, entry, #out - 1)
return out
"""
)
class Join(Script):
    """A peer enters a room (after the database said yes). Answers {seq, members of other nodes...}."""

    room_key: str = key()  # the room's hash
    me: str = arg()  # this node's id
    ttl_ms: int = arg()  # how long the entry lives without a heartbeat
    key_ttl_ms: int = arg()  # how long the room's hash lives without any
    channel: str = arg()  # the fabric's events channel
    room: str = arg()
    entry: str = arg()  # the peer's entry, json: Peer.public() and its node


@fabric_script(
    """
local now = now_ms()
-- The tombstone: a heartbeat of the peer's node that read its entry before this leave, and reaches
-- Redis after it (another connection), must not put it back and announce it joined again.
redis.call('HSET', room_key, '~gone:' .. peer_id, string.format('%d', now))
redis.call('PEXPIRE', room_key, key_ttl_ms)
local v = redis.call('HGET', room_key, peer_id)
if not v then return 0 end
redis.call('HDEL', room_key, peer_id)
announce(channel, room, bump(room_key, now), 'peer-left', cjson.decode(v))
return 1
"""
)
class Leave(Script):
    """A peer leaves its room for good; answers 1, or 0 if it was not there (expired and announced
    already, or its join never reached Redis)."""

    room_key: str = key()
    key_ttl_ms: int = arg()  # how long the room's hash (and so the tombstone) lives without a heartbeat
    channel: str = arg()
    room: str = arg()
    peer_id: str = arg()


@fabric_script(
    """
local now = now_ms()
local expires = now + tonumber(ttl_ms)
for _, entry in ipairs(entries) do
  local e = cjson.decode(entry)
  e.expires = expires
  if redis.call('HEXISTS', room_key, '~gone:' .. e.peer_id) == 0  -- left since this beat read it
      and redis.call('HSET', room_key, e.peer_id, cjson.encode(e)) == 1 then
    announce(channel, room, bump(room_key, now), 'peer-joined', e)  -- swept while this node stalled
  end
end
local all = redis.call('HGETALL', room_key)
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 6) == '~gone:' then
    -- peer ids are never reused: a tombstone only has to outlast a heartbeat in flight
    if tonumber(all[i + 1]) < now - tonumber(key_ttl_ms) then redis.call('HDEL', room_key, all[i]) end
  elseif string.byte(all[i], 1) ~= 126 then
    local e = cjson.decode(all[i + 1])
    if e.node ~= me and tonumber(e.expires) < now then
      redis.call('HDEL', room_key, all[i])
      announce(channel, room, bump(room_key, now), 'peer-left', e)
    end
  end
end
redis.call('PEXPIRE', room_key, key_ttl_ms)
return snapshot(room_key, now, me)
"""
)
class Heartbeat(Script):
    """Refresh this node's peers of a room, sweep other nodes' expired ones; answers a snapshot."""

    room_key: str = key()
    me: str = arg()
    ttl_ms: int = arg()
    key_ttl_ms: int = arg()
    channel: str = arg()
    room: str = arg()
    entries: tuple[str, ...] = rest()  # this node's entries in the room


@fabric_script(
    """
return snapshot(room_key, now_ms(), me)
"""
)
class Peers(Script):
    """The room's live members of other nodes: {seq, entries...}."""

    room_key: str = key()
    me: str = arg()


@script(
    body="""
local v = redis.call('HGET', room_key, peer_id)
if not v then return -1 end
local e = cjson.decode(v)
if e.node == me then return -1 end
return redis.call('PUBLISH', node_prefix .. e.node, payload)
"""
)
class Forward(Script):
    """A message to a peer of another node, published to that node's channel; -1 when the peer is in
    no other node (else PUBLISH's count of receivers, 0 if that node is gone)."""

    room_key: str = key()
    me: str = arg()
    node_prefix: str = arg()  # a node's channel is this plus its id
    peer_id: str = arg()
    payload: str = arg()  # json {room, to, message}


@fabric_script(
    """
local now = now_ms()
local out, live = members(room_key, now, me)
if live >= tonumber(max_peers) then return {3} end
-- part: ledger
if verdict == 0 then return {0} end
local entered = 0
if verdict == 1 and entry ~= '' then
  out[1] = enter(room_key, now, ttl_ms, key_ttl_ms, channel, room, entry, #out - 1)
  entered = 1
end
table.insert(out, 1, entered)
table.insert(out, 1, verdict)
return out
"""
)
class Admit(Script):
    """A join's one round trip. A full room is refused before the token is spent; then the ledger's
    step; then, for a fresh token with an entry, the peer enters the room as Join would. Answers {3}
    (full), {0} (spent already), or {verdict, entered, seq, members...}."""

    ledger: LedgerStep = part()
    room_key: str = key()
    me: str = arg()
    max_peers: int = arg()
    ttl_ms: int = arg()
    key_ttl_ms: int = arg()
    channel: str = arg()
    room: str = arg()
    entry: str = arg()  # '' leaves entering to a later Join (the database decides first)


@fabric_script(
    """
local now = now_ms()
local e = cjson.decode(entry)
-- It left meanwhile (its tombstone): putting it back would announce a ghost to the other nodes.
if redis.call('HEXISTS', room_key, '~gone:' .. e.peer_id) == 1 then return {0} end
local out, live = members(room_key, now, me)
local held = redis.call('HGET', room_key, e.peer_id)
local counted = false  -- its lost link never reached Redis (Redis was away): it holds its place still
if held then
  local h = cjson.decode(held)
  counted = tonumber(h.expires) >= now and h.state ~= 'reconnecting'
end
if not counted and live >= tonumber(max_peers) then return {3} end
e.expires = now + tonumber(ttl_ms)
if redis.call('HSET', room_key, e.peer_id, cjson.encode(e)) == 1 then
  out[1] = bump(room_key, now)
  announce(channel, room, out[1], 'peer-joined', e)  -- swept while its link was down: back for the others
end
redis.call('PEXPIRE', room_key, key_ttl_ms)
table.insert(out, 1, 1)
return out
"""
)
class Reseat(Script):
    """A resume's step: a peer shown reconnecting takes a place in its room again only if the room,
    counting every node's peers, has one (as Admit counts a join's). Answers {3} (full), {0} (it left
    meanwhile), or {1, seq, members of other nodes...}."""

    room_key: str = key()
    me: str = arg()
    max_peers: int = arg()
    ttl_ms: int = arg()
    key_ttl_ms: int = arg()
    channel: str = arg()
    room: str = arg()
    entry: str = arg()  # the peer's entry, json: Peer.public() and its node, without a state


SCRIPTS: tuple[type[Script], ...] = (Join, Leave, Heartbeat, Peers, Forward, Admit, Reseat)
