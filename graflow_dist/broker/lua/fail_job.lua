-- A worker gives up a job it cannot even read: the job goes to RQ's failed registry
-- (kept for inspection, with the reason) and its lease is released. Returns RELEASED,
-- or LEASE_LOST if the lease was no longer the worker's (then nothing changes).
local leases_key = KEYS[1]
local owners_key = KEYS[2]
local jobmap_key = KEYS[3]
local worker_key = KEYS[4]
local failed_key = KEYS[5]
local job_id = ARGV[1]
local worker = ARGV[2]
local reason = ARGV[3]
local ended_at = ARGV[4]

if redis.call('HGET', owners_key, job_id) ~= worker then return LEASE_LOST end
release_running(job_id, worker)
redis.call('HSET', RQ_JOB .. job_id, F_JOB_STATUS, 'failed', F_JOB_EXC_INFO, reason,
           F_JOB_ENDED_AT, ended_at)
redis.call('ZADD', failed_key, now() + RQ_FAILED_TTL_S, job_id)
redis.call('ZREM', leases_key, job_id)
redis.call('HDEL', owners_key, job_id)
redis.call('HDEL', jobmap_key, job_id)
redis.call('HINCRBY', worker_key, F_WORKER_FAILED_JOBS, 1)
return RELEASED
