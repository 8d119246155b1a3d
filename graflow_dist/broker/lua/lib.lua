-- Shared by every script (prepended after the generated constants).

-- The server's clock, in epoch seconds with microseconds.
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- The type of `key` as TYPE names it ('none' when there is no such key).
local function key_type(key)
  return redis.call('TYPE', key)['ok']
end

-- Whether `key` is absent or holds a `t`.
local function is_a(key, t)
  local actual = key_type(key)
  return actual == 'none' or actual == t
end

-- Someone else may have written any key: a script checks the types of the keys it
-- writes before it writes anything (Lua does not roll back). `checks` is
-- {key, type, key, type, ...}; returns nil, or {WRONG_TYPE, key, actual type, ...}.
local function wrong_types(checks)
  local out = nil
  for i = 1, #checks, 2 do
    local actual = key_type(checks[i])
    if actual ~= 'none' and actual ~= checks[i + 1] then
      out = out or {WRONG_TYPE}
      out[#out + 1] = checks[i]
      out[#out + 1] = actual
    end
  end
  return out
end

-- The type each write command needs its key (second word) to hold.
local NEEDS = {HSET = 'hash', HDEL = 'hash', HINCRBY = 'hash', SADD = 'set',
               SREM = 'set', ZADD = 'zset', ZREM = 'zset', RPUSH = 'list', LPUSH = 'list',
               LTRIM = 'list', XADD = 'stream', XTRIM = 'stream'}

-- The {key, type, ...} checks of a list of commands (each key once).
local function command_checks(commands)
  local checks = {}
  local seen = {}
  for i = 1, #commands do
    local cmd = commands[i]
    local needs = NEEDS[string.upper(cmd[1])]
    if needs and cmd[2] and not seen[cmd[2]] then
      seen[cmd[2]] = true
      checks[#checks + 1] = cmd[2]
      checks[#checks + 1] = needs
    end
  end
  return checks
end

-- Commands packed one after another (msgpack), as a table (unpacked a thousand at a
-- time: Lua returns at most ~8,000 values from one call).
local function unpack_commands(payload)
  local commands = {}
  if #payload == 0 then return commands end
  local offset = 0
  while offset >= 0 do
    local unpacked = {cmsgpack.unpack_limit(payload, 1000, offset)}
    offset = unpacked[1]
    for i = 2, #unpacked do commands[#commands + 1] = unpacked[i] end
  end
  return commands
end

-- HINCRBY that cannot fail the script: a counter someone overwrote with text is reset.
local function add_to_counter(key, field, amount)
  local reply = redis.pcall('HINCRBY', key, field, amount)
  if type(reply) == 'table' and reply.err then
    redis.call('HSET', key, field, amount)
  end
end

-- A job hash's task count field as a count (0 if it is not a sane count).
local function task_count(raw)
  local n = tonumber(raw or '0')
  if not n or n ~= n or n < 0 or n > MAX_JOB_TASKS then return 0 end
  return math.floor(n)
end

-- A claimed job stops counting: its tasks leave the run's `running` count (unless the
-- run expired: never recreate its meta) and RQ's started registry forgets it.
local function release_running(job_id, owner)
  local job_key = RQ_JOB .. job_id
  if key_type(job_key) ~= 'hash' then return end
  -- one read for the fields used below (each redis.call costs: many jobs per second)
  local session, tasks, origin = unpack(redis.call('HMGET', job_key, F_JOB_SESSION,
                                                   F_JOB_TASKS, F_JOB_ORIGIN))
  if session then
    local meta = RUN_KEY_HEAD .. session .. RUN_META_TAIL
    if key_type(meta) == 'hash' then
      add_to_counter(meta, F_RUN_RUNNING, -task_count(tasks))
    end
  end
  local wip = RQ_WIP .. (origin or '')
  if is_a(wip, 'zset') then redis.call('ZREM', wip, job_id .. ':' .. owner) end
end

-- A worker releases a job it finished: RELEASED, or LEASE_LOST if the lease was no
-- longer its own (then nothing changes: the job runs elsewhere).
local function finish_job(leases_key, owners_key, jobmap_key, worker_key, job_id, worker)
  if redis.call('HGET', owners_key, job_id) ~= worker then return LEASE_LOST end
  release_running(job_id, worker)
  redis.call('ZREM', leases_key, job_id)
  redis.call('HDEL', owners_key, job_id)
  redis.call('HDEL', jobmap_key, job_id)
  redis.call('DEL', RQ_JOB .. job_id)
  add_to_counter(worker_key, F_WORKER_SUCCESSFUL_JOBS, 1)
  return RELEASED
end

-- A worker gives up a job it cannot even read: to RQ's failed registry (kept for
-- inspection, with the reason), lease released. RELEASED, or LEASE_LOST (no change).
local function fail_job(leases_key, owners_key, jobmap_key, worker_key, failed_key, job_id,
                        worker, reason, ended_at)
  if redis.call('HGET', owners_key, job_id) ~= worker then return LEASE_LOST end
  release_running(job_id, worker)
  local job_key = RQ_JOB .. job_id
  if is_a(job_key, 'hash') then
    redis.call('HSET', job_key, F_JOB_STATUS, 'failed', F_JOB_EXC_INFO, reason,
               F_JOB_ENDED_AT, ended_at)
  end
  redis.call('ZADD', failed_key, now() + RQ_FAILED_TTL_S, job_id)
  redis.call('ZREM', leases_key, job_id)
  redis.call('HDEL', owners_key, job_id)
  redis.call('HDEL', jobmap_key, job_id)
  add_to_counter(worker_key, F_WORKER_FAILED_JOBS, 1)
  return RELEASED
end

-- Claim up to `max_jobs` jobs off `queue_key` (the caller checked the types of the keys
-- passed): each leaves the queue together with its lease. Returns {jobs left in the
-- queue, id1, data1, run status1, id2, ...}; the status is '' for a run that expired,
-- or SUPERSEDED for a job of an earlier submission of its session. A job id whose job
-- key is not a hash comes with data `false` (nil in Python) and its key's type, so the
-- worker can report and quarantine it.
local function claim_jobs(queue_key, leases_key, owners_key, wake_key, worker_key, lease_arg,
                          worker, max_jobs, started_at)
  local deadline = now() + tonumber(lease_arg)
  local out = {0}
  for _ = 1, max_jobs do
    local job_id = redis.call('LPOP', queue_key)
    if not job_id then break end
    local job_key = RQ_JOB .. job_id
    local job_type = key_type(job_key)
    local data, origin, session, tasks, incarnation = false, false, false, false, false
    if job_type == 'hash' then  -- one read for the fields used below
      data, origin, session, tasks, incarnation = unpack(redis.call(
        'HMGET', job_key, F_JOB_DATA, F_JOB_ORIGIN, F_JOB_SESSION, F_JOB_TASKS,
        F_JOB_INCARNATION))
    end
    if data then
      redis.call('ZADD', leases_key, deadline, job_id)
      redis.call('HSET', owners_key, job_id, worker)
      redis.call('HSET', job_key, F_JOB_STATUS, 'started', F_JOB_WORKER_NAME, worker,
                 F_JOB_STARTED_AT, started_at, F_JOB_LEASE_S, lease_arg)
      -- rq info counts the started registry as "executing"; the score lies past any
      -- lease so that RQ's own clean-up never fails the job (our reaper decides).
      local wip = RQ_WIP .. (origin or '')
      if is_a(wip, 'zset') then
        redis.call('ZADD', wip, deadline + RQ_WIP_EXTRA_S, job_id .. ':' .. worker)
      end
      local status = ''
      local meta = session and (RUN_KEY_HEAD .. session .. RUN_META_TAIL)
      if meta and key_type(meta) == 'hash' then
        add_to_counter(meta, F_RUN_RUNNING, task_count(tasks))
        local run_status, run_incarnation = unpack(redis.call(
          'HMGET', meta, F_RUN_STATUS, F_RUN_INCARNATION))
        status = run_status or ''
        if (incarnation or '') ~= (run_incarnation or '') then
          status = SUPERSEDED
        end
      end
      out[#out + 1] = job_id
      out[#out + 1] = data
      out[#out + 1] = status
    elseif job_type ~= 'none' and job_type ~= 'hash' then
      out[#out + 1] = job_id
      out[#out + 1] = false
      out[#out + 1] = job_type
    end
  end
  local left = redis.call('LLEN', queue_key)
  out[1] = left
  if left > 0 then  -- more work: wake the next idle worker
    redis.call('LPUSH', wake_key, 1)
    redis.call('LTRIM', wake_key, 0, 0)
  end
  if #out > 1 then redis.call('HSET', worker_key, F_WORKER_STATE, 'busy') end
  return out
end
