-- A worker renews the leases it still owns. Returns the job ids whose lease it lost
-- (reaped, or never its own), or {WRONG_TYPE, ...}.
local leases_key = KEYS[1]
local owners_key = KEYS[2]
local lease_s = tonumber(ARGV[1])
local worker = ARGV[2]
-- ARGV[3..]: job ids

local wrong = wrong_types({leases_key, 'zset', owners_key, 'hash'})
if wrong then return wrong end
local deadline = now() + lease_s
local lost = {}
for i = 3, #ARGV do
  local job_id = ARGV[i]
  if redis.call('HGET', owners_key, job_id) == worker then
    redis.call('ZADD', leases_key, 'XX', deadline, job_id)
  else
    lost[#lost + 1] = job_id
  end
end
return lost
