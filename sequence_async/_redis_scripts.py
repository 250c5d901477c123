"""
The Lua scripts the Redis coordinator runs: text only, no logic in Python.

Owns the server-side half of ``sequence_async.redis``: the reservation GCRA
and its 429 pause, the per-rule leases, the registry of pending waits, and
the store of outcomes with its notification stream. Every script reads the
clock with ``TIME`` (never a client clock; since Redis 5 scripts replicate as
effects, so a script may read the time and then write), writes integers with
``%d`` (``tostring`` would round a microsecond clock to 14 digits), and gives
every key it writes an expiry.

May import: nothing.
"""

from __future__ import annotations


# KEYS: the budget's TAT, the end of its pause. ARGV: emission interval (us),
# this priority's burst tolerance (us), how many slots (requests made at once
# in one process: one call for them all). Reserves the next slots and returns
# how many microseconds each caller sleeps before sending: one round trip,
# first come first served across processes, nobody woken in a crowd. A TAT
# or pause more than max(120 s, 256 intervals) ahead is not trusted.
RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.pcall('GET', KEYS[1])) or 0
local paused = tonumber(redis.pcall('GET', KEYS[2])) or 0
-- Never trust a state further ahead than queues and capped pauses make it
-- (a failover to a replica whose clock is behind, a restore, a hand edit),
-- nor one that is no number (text, nan, another type: read as none): it
-- would hold every request for as long, or fail every reservation.
local horizon = math.max(120000000, 256 * interval)
if not (tat >= now and tat <= now + horizon) then tat = now end
if not (paused <= now + horizon) then paused = 0 end
local waits = {}
for i = 1, tonumber(ARGV[3]) do
  local start = tat - tolerance
  if start < paused then start = paused end
  if start < now then start = now end
  waits[i] = start - now
  tat = tat + interval
end
redis.call('SET', KEYS[1], string.format('%d', tat),
           'PX', math.floor((tat - now) / 1000) + 1000)
return waits
"""

# KEYS: the budget's TAT, the end of its pause. ARGV: pause (us). A 429 seen
# anywhere: nobody, whatever their priority, is admitted before now + pause;
# then the budget starts afresh from there (one burst, then the rate).
DRAIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ends = now + tonumber(ARGV[1])
local ttl = math.floor(tonumber(ARGV[1]) / 1000) + 1000
local paused = tonumber(redis.pcall('GET', KEYS[2])) or 0
if not (paused >= ends) then
  redis.call('SET', KEYS[2], string.format('%d', ends), 'PX', ttl)
end
local tat = tonumber(redis.pcall('GET', KEYS[1])) or 0
if not (tat >= ends) then
  redis.call('SET', KEYS[1], string.format('%d', ends), 'PX', ttl)
end
return 1
"""

# KEYS: the rule's lease, the rule's pending registry. ARGV: our token, lease
# (ms). Takes or renews the lease; then drops expired registrations and
# returns {1, now_ms, id, value, ...}. Held by another: {0, its PTTL}; a
# lease without expiry (set by hand, or restored without TTLs) is taken over.
LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  local left = redis.call('PTTL', KEYS[1])
  if left >= 0 then
    return {0, left}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {1, now}
local entries = redis.call('HGETALL', KEYS[2])
for i = 1, #entries, 2 do
  local expires = tonumber(string.match(entries[i + 1], '^(%d+)'))
  if expires == nil or expires < now then
    redis.call('HDEL', KEYS[2], entries[i])
  else
    out[#out + 1] = entries[i]
    out[#out + 1] = entries[i + 1]
  end
end
return out
"""

# KEYS: leases held by ARGV[1]. Renews those still ours for ARGV[2] ms;
# returns 1 or 0 per lease.
RENEW = """
local out = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# KEYS: lease, events. ARGV: token, rule id, stream length, stream ttl (ms).
# Gives the lease up if ours, and says so: a follower takes it at once.
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'k', 'free', 'r', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""

# KEYS: pending registry, events, then one outcome key per id. ARGV:
# registration ttl (ms), rule id, stream length, stream ttl (ms), then per id:
# id, age at registration (ms), paging bound (epoch ms). Registers (or
# refreshes) the waits without a stored outcome; returns {id, outcome, ...}
# for the others (a key of another type there is no outcome). A new
# registration is announced, so the leader adopts it.
JOIN = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local found = {}
local fresh = 0
for i = 1, #KEYS - 2 do
  local id = ARGV[2 + 3 * i]
  local stored = redis.pcall('GET', KEYS[2 + i])
  if type(stored) == 'string' then
    found[#found + 1] = id
    found[#found + 1] = stored
  else
    local value = string.format('%d %d %s %s', now + ttl, now,
                                ARGV[3 + 3 * i], ARGV[4 + 3 * i])
    fresh = fresh + redis.call('HSET', KEYS[1], id, value)
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
if fresh > 0 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'k', 'reg', 'r', ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
return found
"""

# KEYS: outcome keys. ARGV: the text read at each (not an outcome of ours).
# Drops each key still holding that text, so that its wait can register.
DROP_IF = """
local dropped = 0
for i = 1, #KEYS do
  if redis.pcall('GET', KEYS[i]) == ARGV[i] then
    dropped = dropped + redis.call('DEL', KEYS[i])
  end
end
return dropped
"""

# KEYS: pending registry, events, then one outcome key per id. ARGV: outcome
# ttl (s), rule id, stream length, stream ttl (ms), then per id: id, outcome.
# Stores each outcome, ends its registration, and announces the ids.
PUBLISH = """
local ids = {}
for i = 1, #KEYS - 2 do
  local id = ARGV[3 + 2 * i]
  redis.call('SET', KEYS[2 + i], ARGV[4 + 2 * i], 'EX', ARGV[1])
  redis.call('HDEL', KEYS[1], id)
  ids[#ids + 1] = id
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'k', 'done', 'r', ARGV[2],
           'i', table.concat(ids, ' '))
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return #ids
"""

# KEYS: the key's members. ARGV: our token, ttl (ms). Counts the clients
# that heartbeat on this key (the divisor of the fallback budget). A key of
# another type there (not ours) is replaced.
MEMBERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('TYPE', KEYS[1]).ok ~= 'zset' then redis.call('DEL', KEYS[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
"""
