-- The leader marks expired leases as being reaped (owner REAPER, score 0), so that
-- their worker can no longer renew or finish them; a crash before the re-dispatch is
-- committed leaves them expired for the next pass. Returns NOT_LEADER,
-- {WRONG_TYPE, ...}, or {job id, previous owner, jobmap entry or '', ...}.
local leader_key = KEYS[1]
local leases_key = KEYS[2]
local owners_key = KEYS[3]
local jobmap_key = KEYS[4]
local leader_id = ARGV[1]
local max_jobs = tonumber(ARGV[2])

local wrong = wrong_types({leader_key, 'string', leases_key, 'zset', owners_key, 'hash',
                           jobmap_key, 'hash'})
if wrong then return wrong end
if redis.call('GET', leader_key) ~= leader_id then return NOT_LEADER end
local expired = redis.call('ZRANGEBYSCORE', leases_key, '-inf', now(), 'LIMIT', 0, max_jobs)
local out = {}
for _, job_id in ipairs(expired) do
  local owner = redis.call('HGET', owners_key, job_id) or ''
  if owner ~= REAPER then release_running(job_id, owner) end
  redis.call('HSET', owners_key, job_id, REAPER)
  redis.call('ZADD', leases_key, 0, job_id)
  out[#out + 1] = job_id
  out[#out + 1] = owner
  out[#out + 1] = redis.call('HGET', jobmap_key, job_id) or ''
end
return out
