-- A worker's reports and what becomes of the job they are about, in one step (so a
-- report can never be lost while its job is released). The events are appended to the
-- stream, then by `mode`: 'release' (the job is done: as `finish`), 'claim' (as
-- 'release', then the worker claims up to `max_jobs` next jobs as `claim` does: one
-- round trip from one job to the next), 'held' (more to come: does the worker still
-- hold the job?), 'fail' (a job it cannot read: as `fail_job`), 'none', 'continue' or
-- 'ahead' (below). Returns RELEASED / HELD, or LEASE_LOST (the events are appended all
-- the same: the coordinator fences stale ones off), 0 for 'none'; for 'claim' (and
-- 'ahead' with `max_jobs` > 0) {RELEASED or LEASE_LOST, then the reply of `claim`}; or
-- {WRONG_TYPE, ...} having written nothing.
--
-- 'continue' (local continuation): ARGV[8] is the completion of the job's last task
-- carrying the worker's proposal for its successor, ARGV[9] the same completion without
-- it, ARGV[10..] earlier reports, `reason` the proposed token. Only while the worker
-- holds the lease, the job's jobmap entry reads and its run goes on (not finished, the
-- job's incarnation): the earlier reports and ARGV[8] are appended and the token joins
-- the job's tokens (a reaper re-dispatches it like any task of the job), CONTINUED. Otherwise ARGV[9] goes instead and the job is released
-- as in 'release' (RELEASED or LEASE_LOST): a proposal is in the stream only if its
-- token is in the job's entry, recorded by the lease's owner.
--
-- 'ahead' (a continuation run ahead of its record, ending the job): as 'continue', but
-- the worker already ran the proposed successor, the job's last task. ARGV[8] and
-- ARGV[9] as there, ARGV[10] the number n of earlier reports (ARGV[11..10+n]), then the
-- successor's own reports. Under the conditions of 'continue' the earlier reports,
-- ARGV[8] and the successor's reports are appended; otherwise the earlier reports and
-- ARGV[9] (the successor's run is dropped: the coordinator dispatches it as usual).
-- Then the job is released and, with `max_jobs` > 0, the next jobs claimed, as in
-- 'claim' (or 'release' with `max_jobs` 0).
local events_key = KEYS[1]
local leases_key = KEYS[2]
local owners_key = KEYS[3]
local jobmap_key = KEYS[4]
local worker_key = KEYS[5]
local failed_key = KEYS[6]
local queue_key = KEYS[7]  -- claiming only
local wake_key = KEYS[8]  -- claiming only
local mode = ARGV[1]
local job_id = ARGV[2]
local worker = ARGV[3]
local reason = ARGV[4]
local ended_at = ARGV[5]
local lease_arg = ARGV[6]  -- claiming only
local max_jobs = tonumber(ARGV[7] or '0')  -- claiming only ('claim', 'ahead')
-- ARGV[8..]: encoded events

local checks = {events_key, 'stream', leases_key, 'zset', owners_key, 'hash',
                jobmap_key, 'hash', worker_key, 'hash', failed_key, 'zset'}
local claiming = mode == 'claim' or (mode == 'ahead' and max_jobs > 0)
if claiming then
  checks[#checks + 1] = queue_key
  checks[#checks + 1] = 'list'
  checks[#checks + 1] = wake_key
  checks[#checks + 1] = 'list'
end
local wrong = wrong_types(checks)
if wrong then return wrong end

-- The jobmap entry {session, {tokens}} decoded, or nil if it does not read or its run
-- is not going on in the job's incarnation (over, or submitted again).
local function going_entry(entry)
  if not entry then return nil end
  local ok, decoded = pcall(cmsgpack.unpack, entry)
  if not ok or type(decoded) ~= 'table' or type(decoded[1]) ~= 'string'
     or type(decoded[2]) ~= 'table' or #decoded ~= 2 then
    return nil
  end
  local meta = RUN_KEY_HEAD .. decoded[1] .. RUN_META_TAIL
  local job_key = RQ_JOB .. job_id
  if key_type(meta) ~= 'hash' or key_type(job_key) ~= 'hash' then return nil end
  local status, run_incarnation = unpack(redis.call('HMGET', meta, F_RUN_STATUS,
                                                     F_RUN_INCARNATION))
  if not status or string.find(FINISHED_STATUSES, ',' .. status .. ',', 1, true)
     or (redis.call('HGET', job_key, F_JOB_INCARNATION) or '') ~= (run_incarnation or '') then
    return nil
  end
  return decoded
end

-- The jobmap entry with `token` added, or nil as for `going_entry`.
local function with_token(entry, token)
  local decoded = going_entry(entry)
  if not decoded then return nil end
  for _, known in ipairs(decoded[2]) do
    if known == token then return entry end  -- a report sent again
  end
  table.insert(decoded[2], token)
  return cmsgpack.pack(decoded)
end

if mode == 'continue' then
  local entry = nil
  if redis.call('HGET', owners_key, job_id) == worker then
    entry = with_token(redis.call('HGET', jobmap_key, job_id), reason)
  end
  for i = 10, #ARGV do
    redis.call('XADD', events_key, '*', F_EVENT, ARGV[i])
  end
  if entry then
    redis.call('HSET', jobmap_key, job_id, entry)
    redis.call('XADD', events_key, '*', F_EVENT, ARGV[8])
    return CONTINUED
  end
  redis.call('XADD', events_key, '*', F_EVENT, ARGV[9])
  return finish_job(leases_key, owners_key, jobmap_key, worker_key, job_id, worker)
end

if mode == 'ahead' then
  -- recorded as 'continue' would record it; the job ends here, so its entry is not
  -- rewritten with the token
  local recorded = redis.call('HGET', owners_key, job_id) == worker
    and going_entry(redis.call('HGET', jobmap_key, job_id)) ~= nil
  local earlier = math.max(0, math.min(tonumber(ARGV[10]) or 0, #ARGV - 10))
  for i = 11, 10 + earlier do
    redis.call('XADD', events_key, '*', F_EVENT, ARGV[i])
  end
  if recorded then
    redis.call('XADD', events_key, '*', F_EVENT, ARGV[8])
    for i = 11 + earlier, #ARGV do
      redis.call('XADD', events_key, '*', F_EVENT, ARGV[i])
    end
  else
    redis.call('XADD', events_key, '*', F_EVENT, ARGV[9])
  end
else
  for i = 8, #ARGV do
    redis.call('XADD', events_key, '*', F_EVENT, ARGV[i])
  end
end
if mode == 'release' or (mode == 'ahead' and not claiming) then
  return finish_job(leases_key, owners_key, jobmap_key, worker_key, job_id, worker)
elseif claiming then
  local released = finish_job(leases_key, owners_key, jobmap_key, worker_key, job_id, worker)
  local out = claim_jobs(queue_key, leases_key, owners_key, wake_key, worker_key, lease_arg,
                         worker, max_jobs, ended_at)
  table.insert(out, 1, released)
  return out
elseif mode == 'fail' then
  return fail_job(leases_key, owners_key, jobmap_key, worker_key, failed_key, job_id, worker,
                  reason, ended_at)
elseif mode == 'held' then
  if redis.call('HGET', owners_key, job_id) == worker then return HELD end
  return LEASE_LOST
end
return 0
