"""Lua scripts: the few places where atomicity needs more than MULTI/EXEC.

Every script touches only graflow-dist and rq keys, on a single Redis (rq itself is
not Redis Cluster safe either).
"""

from __future__ import annotations

from typing import Any

import redis

# Apply a list of commands only while the caller holds the coordinator lease, and only
# on the state the caller last committed: KEYS[2] counts commits, and a count other than
# ARGV[3] means Redis lost acknowledged writes (a crash between fsyncs, a failover to a
# lagging replica), so the caller's in-memory frontier is ahead of Redis and must reload.
# KEYS[1] leader key; ARGV[1] the caller's id; ARGV[2] msgpack [[cmd, args...], ...].
# Returns -1 (not leader), -2 (state behind the caller), -3 (a command too long to
# apply; nothing was written) or the number of failed commands.
FENCED_APPLY = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[3] then return -2 end
local cmds = cmsgpack.unpack(ARGV[2])
for i = 1, #cmds do
  if #cmds[i] > 7000 then return -3 end  -- unpack() would fail half-way: write nothing
end
redis.call('INCR', KEYS[2])
local errors = 0
for i = 1, #cmds do
  local res = redis.pcall(unpack(cmds[i]))
  if type(res) == 'table' and res.err then errors = errors + 1 end
end
return errors
"""

# KEYS[1] leader key, KEYS[2] epoch counter; ARGV[1] id, ARGV[2] lease ms.
# Returns the new fencing epoch when acquired or renewed by the holder, else 0.
LEADER_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('INCR', KEYS[2])
"""

LEADER_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Workers: claim up to ARGV[3] jobs atomically into leases (no loss window).
# KEYS: rq queue, leases zset, lease owner hash, wake list, worker hash.
# ARGV: lease seconds, worker name, max jobs, started_at string, key prefix.
# Returns {remaining, id1, data1, run status1, id2, data2, run status2, ...}.
CLAIM = """
local out = {0}
local t = redis.call('TIME')
local deadline = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
local n = tonumber(ARGV[3])
for i = 1, n do
  local id = redis.call('LPOP', KEYS[1])
  if not id then break end
  local jk = 'rq:job:' .. id
  local data = redis.call('HGET', jk, 'data')
  if data then
    redis.call('ZADD', KEYS[2], deadline, id)
    redis.call('HSET', KEYS[3], id, ARGV[2])
    redis.call('HSET', jk, 'status', 'started', 'worker_name', ARGV[2], 'started_at', ARGV[4],
               'gf_lease_s', ARGV[1])
    -- rq info counts rq:wip as "executing"; the score lies past any lease so rq's own
    -- clean-up never fails the job (our reaper decides).
    redis.call('ZADD', 'rq:wip:' .. (redis.call('HGET', jk, 'origin') or ''),
               deadline + 86400, id .. ':' .. ARGV[2])
    local s = redis.call('HGET', jk, 'gf_session')
    local status = ''
    local meta = s and (ARGV[5] .. ':run:' .. s .. ':meta')
    if meta and redis.call('EXISTS', meta) == 1 then  -- never recreate an expired run
      redis.call('HINCRBY', meta, 'running', tonumber(redis.call('HGET', jk, 'gf_tasks') or '0'))
      status = redis.call('HGET', meta, 'status') or ''
      -- a job of an earlier submission of this session: the worker skips it
      if (redis.call('HGET', jk, 'gf_incarnation') or '') ~=
         (redis.call('HGET', meta, 'incarnation') or '') then
        status = 'superseded'
      end
    end
    out[#out + 1] = id
    out[#out + 1] = data
    out[#out + 1] = status
  end
end
local left = redis.call('LLEN', KEYS[1])
out[1] = left
if left > 0 then
  redis.call('LPUSH', KEYS[4], 1)
  redis.call('LTRIM', KEYS[4], 0, 0)
end
if #out > 1 then redis.call('HSET', KEYS[5], 'state', 'busy') end
return out
"""

# Workers: renew the leases they still own. KEYS: leases, owner; ARGV: lease s, worker,
# job ids... Returns the ids whose lease is lost (reaped or never ours).
EXTEND = """
local t = redis.call('TIME')
local deadline = tonumber(t[1]) + tonumber(t[2]) / 1000000 + tonumber(ARGV[1])
local lost = {}
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[2] then
    redis.call('ZADD', KEYS[1], 'XX', deadline, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""

# Workers: release a finished job. KEYS: leases, owner, jobmap, worker hash;
# ARGV: job id, worker, key prefix. Returns 1 if the lease was still ours.
FINISH = """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
local jk = 'rq:job:' .. ARGV[1]
local s = redis.call('HGET', jk, 'gf_session')
if s and redis.call('EXISTS', ARGV[3] .. ':run:' .. s .. ':meta') == 1 then
  redis.call('HINCRBY', ARGV[3] .. ':run:' .. s .. ':meta', 'running',
             -tonumber(redis.call('HGET', jk, 'gf_tasks') or '0'))
end
redis.call('ZREM', 'rq:wip:' .. (redis.call('HGET', jk, 'origin') or ''),
           ARGV[1] .. ':' .. ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('DEL', 'rq:job:' .. ARGV[1])
redis.call('HINCRBY', KEYS[4], 'successful_job_count', 1)
return 1
"""

# Coordinator: mark expired leases as being reaped (owner 'reaper', score 0), so the
# worker can no longer renew or finish them; a crash before the re-dispatch is
# committed leaves them expired for the next pass. KEYS: leader, leases, owner, jobmap;
# ARGV: leader id, max jobs, key prefix. Returns {id, owner, jobmap entry or false, ...}.
REAP_MARK = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local owner = redis.call('HGET', KEYS[3], id) or ''
  if owner ~= 'reaper' then
    local jk = 'rq:job:' .. id
    local s = redis.call('HGET', jk, 'gf_session')
    if s and redis.call('EXISTS', ARGV[3] .. ':run:' .. s .. ':meta') == 1 then
      redis.call('HINCRBY', ARGV[3] .. ':run:' .. s .. ':meta', 'running',
                 -tonumber(redis.call('HGET', jk, 'gf_tasks') or '0'))
    end
    redis.call('ZREM', 'rq:wip:' .. (redis.call('HGET', jk, 'origin') or ''), id .. ':' .. owner)
  end
  redis.call('HSET', KEYS[3], id, 'reaper')
  redis.call('ZADD', KEYS[2], 0, id)
  out[#out + 1] = id
  out[#out + 1] = owner
  out[#out + 1] = redis.call('HGET', KEYS[4], id) or ''
end
return out
"""

# Coordinator, once after a Redis outage: nobody could renew a lease while Redis was
# unreachable, so every live lease gets one full lease period (its own length, from
# the job; ARGV[2] if unknown) from now before the reaper may take it.
# KEYS: leader, leases, owner; ARGV: leader id, default lease s. Returns leases extended.
LEASE_GRACE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local entries = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local n = 0
for i = 1, #entries, 2 do
  local id = entries[i]
  if redis.call('HGET', KEYS[3], id) ~= 'reaper' then
    local lease = tonumber(redis.call('HGET', 'rq:job:' .. id, 'gf_lease_s') or ARGV[2])
    if tonumber(entries[i + 1]) < now + lease then
      redis.call('ZADD', KEYS[2], now + lease, id)
      n = n + 1
    end
  end
end
return n
"""


class Scripts:
    """The scripts, callable on a client (EVALSHA, loaded on demand) or queued on a
    pipeline (plain EVAL: no NOSCRIPT failure inside a transaction after a Redis
    restart emptied the script cache)."""

    _SOURCES = {
        "fenced_apply": FENCED_APPLY, "leader_acquire": LEADER_ACQUIRE,
        "leader_release": LEADER_RELEASE, "claim": CLAIM, "extend": EXTEND,
        "finish": FINISH, "reap_mark": REAP_MARK, "lease_grace": LEASE_GRACE,
    }

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._scripts = {name: client.register_script(src) for name, src in self._SOURCES.items()}

    def call(self, name: str, keys: list[str], args: list[Any],
             pipe: redis.client.Pipeline | None = None) -> Any:
        if pipe is not None:
            return pipe.eval(self._SOURCES[name], len(keys), *keys, *args)
        return self._scripts[name](keys=keys, args=args)


def as_args(values: list[Any]) -> list[bytes | str]:
    """Stringify command arguments (Lua turns floats into lossy numbers otherwise)."""
    out: list[bytes | str] = []
    for v in values:
        if isinstance(v, bytes | str):
            out.append(v)
        elif isinstance(v, float):
            out.append(repr(v))
        else:
            out.append(str(v))
    return out
