-- Give up the leader lease, if the caller still holds it. Returns RELEASED or NOT_HELD.
local leader_key = KEYS[1]
local holder = ARGV[1]

if key_type(leader_key) == 'string' and redis.call('GET', leader_key) == holder then
  redis.call('DEL', leader_key)
  return RELEASED
end
return NOT_HELD
