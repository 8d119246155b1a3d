-- A worker gives up a job it cannot even read: the job goes to RQ's failed registry
-- (kept for inspection, with the reason) and its lease is released. Returns RELEASED,
-- or LEASE_LOST if the lease was no longer the worker's (then nothing changes), or
-- {WRONG_TYPE, ...}.
local leases_key = KEYS[1]
local owners_key = KEYS[2]
local jobmap_key = KEYS[3]
local worker_key = KEYS[4]
local failed_key = KEYS[5]
local job_id = ARGV[1]
local worker = ARGV[2]
local reason = ARGV[3]
local ended_at = ARGV[4]

local wrong = wrong_types({leases_key, 'zset', owners_key, 'hash', jobmap_key, 'hash',
                           worker_key, 'hash', failed_key, 'zset'})
if wrong then return wrong end
return fail_job(leases_key, owners_key, jobmap_key, worker_key, failed_key, job_id, worker,
                reason, ended_at)
