-- The leader, once after a Redis outage: nobody could renew a lease while Redis was
-- unreachable, so every live lease gets one full lease period (its own length, from its
-- job; `default_lease_s` if unknown) from now before the reaper may take it. Returns
-- NOT_LEADER, the number of leases extended, or {WRONG_TYPE, ...}.
local leader_key = KEYS[1]
local leases_key = KEYS[2]
local owners_key = KEYS[3]
local leader_id = ARGV[1]
local default_lease_s = tonumber(ARGV[2])

local wrong = wrong_types({leader_key, 'string', leases_key, 'zset', owners_key, 'hash'})
if wrong then return wrong end
if redis.call('GET', leader_key) ~= leader_id then return NOT_LEADER end
local t = now()
local entries = redis.call('ZRANGE', leases_key, 0, -1, 'WITHSCORES')
local extended = 0
for i = 1, #entries, 2 do
  local job_id = entries[i]
  if redis.call('HGET', owners_key, job_id) ~= REAPER then
    local job_key = RQ_JOB .. job_id
    local lease = key_type(job_key) == 'hash' and
                  tonumber(redis.call('HGET', job_key, F_JOB_LEASE_S) or '')
    if not lease or lease ~= lease or lease <= 0 or lease > MAX_LEASE_S then
      lease = default_lease_s
    end
    if tonumber(entries[i + 1]) < t + lease then
      redis.call('ZADD', leases_key, t + lease, job_id)
      extended = extended + 1
    end
  end
end
return extended
