-- A worker releases a job it finished. Returns RELEASED, or LEASE_LOST if the lease
-- was no longer its own (then nothing changes: the job runs elsewhere).
local leases_key = KEYS[1]
local owners_key = KEYS[2]
local jobmap_key = KEYS[3]
local worker_key = KEYS[4]
local job_id = ARGV[1]
local worker = ARGV[2]

if redis.call('HGET', owners_key, job_id) ~= worker then return LEASE_LOST end
release_running(job_id, worker)
redis.call('ZREM', leases_key, job_id)
redis.call('HDEL', owners_key, job_id)
redis.call('HDEL', jobmap_key, job_id)
redis.call('DEL', RQ_JOB .. job_id)
redis.call('HINCRBY', worker_key, F_WORKER_SUCCESSFUL_JOBS, 1)
return RELEASED
