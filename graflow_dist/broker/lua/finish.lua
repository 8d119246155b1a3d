-- A worker releases a job it finished. Returns RELEASED, or LEASE_LOST if the lease
-- was no longer its own (then nothing changes: the job runs elsewhere), or
-- {WRONG_TYPE, ...}.
local leases_key = KEYS[1]
local owners_key = KEYS[2]
local jobmap_key = KEYS[3]
local worker_key = KEYS[4]
local job_id = ARGV[1]
local worker = ARGV[2]

local wrong = wrong_types({leases_key, 'zset', owners_key, 'hash', jobmap_key, 'hash',
                           worker_key, 'hash'})
if wrong then return wrong end
return finish_job(leases_key, owners_key, jobmap_key, worker_key, job_id, worker)
