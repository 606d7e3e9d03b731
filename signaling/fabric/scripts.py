"""The Lua scripts of the Redis signaling fabric: each membership change and each forward is one
atomic step on Redis's own clock."""

from signaling.fabric.ledger import ADMIT as LEDGER_ADMIT

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
local function members(key, now, me)  -- {seq, live entries of other nodes...}, and how many are live in all
  local out, live = {tonumber(redis.call('HGET', key, '~seq') or '0')}, 0
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    if string.byte(all[i], 1) ~= 126 then
      local e = cjson.decode(all[i + 1])
      if tonumber(e.expires) >= now then
        live = live + 1
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

# KEYS[1] room hash; ARGV: me, ttl_ms, key_ttl_ms, events channel, room, entry json
JOIN = (
    PRELUDE
    + """
local now = now_ms()
local out = members(KEYS[1], now, ARGV[1])
out[1] = enter(KEYS[1], now, ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], #out - 1)
return out
"""
)

# KEYS[1] room hash; ARGV: events channel, room, peer id
LEAVE = (
    PRELUDE
    + """
local v = redis.call('HGET', KEYS[1], ARGV[3])
if not v then return 0 end
redis.call('HDEL', KEYS[1], ARGV[3])
announce(ARGV[1], ARGV[2], bump(KEYS[1], now_ms()), 'peer-left', cjson.decode(v))
return 1
"""
)

# KEYS[1] room hash; ARGV: me, ttl_ms, key_ttl_ms, events channel, room, entry json...
HEARTBEAT = (
    PRELUDE
    + """
local now = now_ms()
local expires = now + tonumber(ARGV[2])
for i = 6, #ARGV do
  local e = cjson.decode(ARGV[i])
  e.expires = expires
  if redis.call('HSET', KEYS[1], e.peer_id, cjson.encode(e)) == 1 then
    announce(ARGV[4], ARGV[5], bump(KEYS[1], now), 'peer-joined', e)  -- swept while this node stalled
  end
end
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.byte(all[i], 1) ~= 126 then
    local e = cjson.decode(all[i + 1])
    if e.node ~= ARGV[1] and tonumber(e.expires) < now then
      redis.call('HDEL', KEYS[1], all[i])
      announce(ARGV[4], ARGV[5], bump(KEYS[1], now), 'peer-left', e)
    end
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return snapshot(KEYS[1], now, ARGV[1])
"""
)

# KEYS[1] room hash; ARGV: me
PEERS = (
    PRELUDE
    + """
return snapshot(KEYS[1], now_ms(), ARGV[1])
"""
)

# A join's one round trip. A full room is refused before the token is spent; then the ledger's step
# (KEYS[1..4], ARGV[1..3]: signaling.fabric.ledger.ADMIT); then, for a fresh token with an entry to enter,
# the peer enters the room as JOIN would. Answers {3} (full), {0} (spent already), or {verdict,
# entered, seq, members...}. KEYS[5] room hash; ARGV[4..10]: me, max peers, ttl_ms, key_ttl_ms, events
# channel, room, entry json ('' to leave entering to a later JOIN).
ADMIT = (
    PRELUDE
    + """
local now = now_ms()
local out, live = members(KEYS[5], now, ARGV[4])
if live >= tonumber(ARGV[5]) then return {3} end
"""
    + LEDGER_ADMIT
    + """
if verdict == 0 then return {0} end
local entered = 0
if verdict == 1 and ARGV[10] ~= '' then
  out[1] = enter(KEYS[5], now, ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], #out - 1)
  entered = 1
end
table.insert(out, 1, entered)
table.insert(out, 1, verdict)
return out
"""
)

# KEYS[1] room hash; ARGV: me, node channel prefix, peer id, payload
FORWARD = """
local v = redis.call('HGET', KEYS[1], ARGV[3])
if not v then return -1 end
local e = cjson.decode(v)
if e.node == ARGV[1] then return -1 end
return redis.call('PUBLISH', ARGV[2] .. e.node, ARGV[4])
"""
