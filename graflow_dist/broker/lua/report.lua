-- A worker's reports and what becomes of the job they are about, in one step (so a
-- report can never be lost while its job is released). The events are appended to the
-- stream, then by `mode`: 'release' (the job is done: as `finish`), 'claim' (as
-- 'release', then the worker claims up to `max_jobs` next jobs as `claim` does: one
-- round trip from one job to the next), 'held' (more to come: does the worker still
-- hold the job?), 'fail' (a job it cannot read: as `fail_job`), 'none'. Returns
-- RELEASED / HELD, or LEASE_LOST (the events are appended all the same: the coordinator
-- fences stale ones off), 0 for 'none'; for 'claim' {RELEASED or LEASE_LOST, then the
-- reply of `claim`}; or {WRONG_TYPE, ...} having written nothing.
local events_key = KEYS[1]
local leases_key = KEYS[2]
local owners_key = KEYS[3]
local jobmap_key = KEYS[4]
local worker_key = KEYS[5]
local failed_key = KEYS[6]
local queue_key = KEYS[7]  -- 'claim' only
local wake_key = KEYS[8]  -- 'claim' only
local mode = ARGV[1]
local job_id = ARGV[2]
local worker = ARGV[3]
local reason = ARGV[4]
local ended_at = ARGV[5]
local lease_arg = ARGV[6]  -- 'claim' only
local max_jobs = tonumber(ARGV[7] or '0')  -- 'claim' only
-- ARGV[8..]: encoded events

local checks = {events_key, 'stream', leases_key, 'zset', owners_key, 'hash',
                jobmap_key, 'hash', worker_key, 'hash', failed_key, 'zset'}
if mode == 'claim' then
  checks[#checks + 1] = queue_key
  checks[#checks + 1] = 'list'
  checks[#checks + 1] = wake_key
  checks[#checks + 1] = 'list'
end
local wrong = wrong_types(checks)
if wrong then return wrong end
for i = 8, #ARGV do
  redis.call('XADD', events_key, '*', F_EVENT, ARGV[i])
end
if mode == 'release' then
  return finish_job(leases_key, owners_key, jobmap_key, worker_key, job_id, worker)
elseif mode == 'claim' then
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
