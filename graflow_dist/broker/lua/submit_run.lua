-- A client submits a run in one round trip: refused while the session is active
-- ({RUN_ACTIVE, status}), refused when the graph's code it counts on is gone
-- ({CODE_MISSING, key}); this very submission sent again (same incarnation: its reply
-- was lost) is {SUBMITTED} and writes nothing, for the run may have gone on since;
-- else the earlier incarnation's channel is cleared or kept and the commands (record,
-- shape, frontier, channel data, first jobs, the submission event: msgpack one after
-- another) are applied: {SUBMITTED}. Nothing is written when a key it writes holds
-- the wrong type ({WRONG_TYPE, key, type, ...}: quarantine, then submit again).
local meta_key = KEYS[1]
local index_key = KEYS[2]
-- KEYS[3..]: the code the run counts on being stored (a manifest and its code blobs)
local replace_channel = ARGV[1] == '1'
local keep_channel = ARGV[2] == '1'
local channel_prefix = ARGV[3]
local code_ttl = ARGV[4]
local incarnation = ARGV[5]
local commands = unpack_commands(ARGV[6])

local checks = command_checks(commands)
checks[#checks + 1] = meta_key
checks[#checks + 1] = 'hash'
checks[#checks + 1] = index_key
checks[#checks + 1] = 'set'
local wrong = wrong_types(checks)
if wrong then return wrong end
local status, run_incarnation = unpack(redis.call('HMGET', meta_key, F_RUN_STATUS,
                                                  F_RUN_INCARNATION))
if run_incarnation == incarnation then return {SUBMITTED} end
if status and not string.find(FINISHED_STATUSES, ',' .. status .. ',', 1, true) then
  return {RUN_ACTIVE, status}
end
for i = 3, #KEYS do
  if redis.call('EXPIRE', KEYS[i], code_ttl) == 0 then return {CODE_MISSING, KEYS[i]} end
end
if replace_channel then
  for _, name in ipairs(redis.call('SMEMBERS', index_key)) do
    redis.call('DEL', channel_prefix .. name)
  end
  redis.call('DEL', index_key)
elseif keep_channel then
  for _, name in ipairs(redis.call('SMEMBERS', index_key)) do
    redis.call('PERSIST', channel_prefix .. name)
  end
  redis.call('PERSIST', index_key)
end
for i = 1, #commands do redis.call(unpack(commands[i])) end
return {SUBMITTED}
