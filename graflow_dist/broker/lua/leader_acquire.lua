-- Acquire or renew the coordinator leader lease. Returns the fencing epoch (new on
-- every change of leader) or NOT_ACQUIRED while another coordinator holds it.
local leader_key = KEYS[1]
local epoch_key = KEYS[2]
local candidate = ARGV[1]
local lease_ms = ARGV[2]

local holder = redis.call('GET', leader_key)
if holder == candidate then
  redis.call('PEXPIRE', leader_key, lease_ms)
  return tonumber(redis.call('GET', epoch_key) or '0')
end
if holder then return NOT_ACQUIRED end
redis.call('SET', leader_key, candidate, 'PX', lease_ms)
return redis.call('INCR', epoch_key)
