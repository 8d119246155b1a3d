-- Shared by every script (prepended after the generated constants).

-- The server's clock, in epoch seconds with microseconds.
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

-- A claimed job stops counting: its tasks leave the run's `running` count (unless the
-- run expired: never recreate its meta) and RQ's started registry forgets it.
local function release_running(job_id, owner)
  local job_key = RQ_JOB .. job_id
  local session = redis.call('HGET', job_key, F_JOB_SESSION)
  if session then
    local meta = RUN_KEY_HEAD .. session .. RUN_META_TAIL
    if redis.call('EXISTS', meta) == 1 then
      local tasks = tonumber(redis.call('HGET', job_key, F_JOB_TASKS) or '0') or 0
      redis.call('HINCRBY', meta, F_RUN_RUNNING, -tasks)
    end
  end
  local origin = redis.call('HGET', job_key, F_JOB_ORIGIN) or ''
  redis.call('ZREM', RQ_WIP .. origin, job_id .. ':' .. owner)
end
