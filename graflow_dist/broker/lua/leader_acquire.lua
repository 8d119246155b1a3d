-- Acquire or renew the coordinator leader lease. Returns {epoch, note}: the fencing
-- epoch (new on every change of leader) or NOT_ACQUIRED while another coordinator holds
-- it; `note` says what was repaired ('' if nothing), for the caller's log. Keys someone
-- else wrote are repaired, never obeyed: a lease without an expiry was not set by a
-- coordinator (it would block every one of them forever), and an epoch that is not a
-- count starts over.
local leader_key = KEYS[1]
local epoch_key = KEYS[2]
local candidate = ARGV[1]
local lease_ms = ARGV[2]

local wrong = wrong_types({leader_key, 'string', epoch_key, 'string'})
if wrong then return wrong end
local note = ''
local epoch = tonumber(redis.call('GET', epoch_key) or '0')
if not epoch or epoch ~= epoch or epoch < 0 or epoch >= 2 ^ 52 or epoch ~= math.floor(epoch)
then
  note = 'the leader epoch was not a count; it starts over'
  redis.call('SET', epoch_key, '0')
  epoch = 0
end
local holder = redis.call('GET', leader_key)
if holder == candidate then
  redis.call('PEXPIRE', leader_key, lease_ms)
  if epoch == 0 then epoch = redis.call('INCR', epoch_key) end
  return {epoch, note}
end
if holder and redis.call('PTTL', leader_key) == -1 then
  note = 'the leader lease had no expiry (not written by a coordinator); replaced'
  holder = false
end
if holder then return {NOT_ACQUIRED, note} end
redis.call('SET', leader_key, candidate, 'PX', lease_ms)
return {redis.call('INCR', epoch_key), note}
