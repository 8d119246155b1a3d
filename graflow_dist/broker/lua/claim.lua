-- A worker claims up to `max_jobs` jobs: each leaves the queue only together with its
-- lease (no window in which a crash loses it). Returns
-- {jobs left in the queue, id1, data1, run status1, id2, ...}; the status is '' for a
-- run that expired, or SUPERSEDED for a job of an earlier submission of its session.
-- A job id whose job key is not a hash comes back with data `false` (nil in Python) so
-- the worker can report and quarantine it; or {WRONG_TYPE, ...} if a key of the
-- worker's own is of the wrong type (then nothing changes).
local queue_key = KEYS[1]
local leases_key = KEYS[2]
local owners_key = KEYS[3]
local wake_key = KEYS[4]
local worker_key = KEYS[5]
local lease_s = tonumber(ARGV[1])
local worker = ARGV[2]
local max_jobs = tonumber(ARGV[3])
local started_at = ARGV[4]

local wrong = wrong_types({queue_key, 'list', leases_key, 'zset', owners_key, 'hash',
                           wake_key, 'list', worker_key, 'hash'})
if wrong then return wrong end
local deadline = now() + lease_s
local out = {0}
for _ = 1, max_jobs do
  local job_id = redis.call('LPOP', queue_key)
  if not job_id then break end
  local job_key = RQ_JOB .. job_id
  local job_type = key_type(job_key)
  local data = job_type == 'hash' and redis.call('HGET', job_key, F_JOB_DATA)
  if data then
    redis.call('ZADD', leases_key, deadline, job_id)
    redis.call('HSET', owners_key, job_id, worker)
    redis.call('HSET', job_key, F_JOB_STATUS, 'started', F_JOB_WORKER_NAME, worker,
               F_JOB_STARTED_AT, started_at, F_JOB_LEASE_S, ARGV[1])
    -- rq info counts the started registry as "executing"; the score lies past any
    -- lease so that RQ's own clean-up never fails the job (our reaper decides).
    local wip = RQ_WIP .. (redis.call('HGET', job_key, F_JOB_ORIGIN) or '')
    if is_a(wip, 'zset') then
      redis.call('ZADD', wip, deadline + RQ_WIP_EXTRA_S, job_id .. ':' .. worker)
    end
    local status = ''
    local session = redis.call('HGET', job_key, F_JOB_SESSION)
    local meta = session and (RUN_KEY_HEAD .. session .. RUN_META_TAIL)
    if meta and key_type(meta) == 'hash' then
      add_to_counter(meta, F_RUN_RUNNING, tasks_of(job_key))
      status = redis.call('HGET', meta, F_RUN_STATUS) or ''
      if (redis.call('HGET', job_key, F_JOB_INCARNATION) or '') ~=
         (redis.call('HGET', meta, F_RUN_INCARNATION) or '') then
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
