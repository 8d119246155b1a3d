-- Give a finished run's data a TTL, unless its session was submitted again meanwhile
-- (its incarnation changed: the data is live). The run's channel keys come from its
-- channel index, its feedback requests from its feedback set: no SCAN. Returns
-- EXPIRED or RESUBMITTED.
local meta_key = KEYS[1]
local index_key = KEYS[2]
local feedback_key = KEYS[3]
local incarnation = ARGV[1]
local ttl = ARGV[2]
local channel_prefix = ARGV[3]
-- ARGV[4..]: the run's other keys (frontier, task records, its graph's code)

if key_type(meta_key) ~= 'hash'
    or (redis.call('HGET', meta_key, F_RUN_INCARNATION) or '') ~= incarnation then
  return RESUBMITTED
end
if key_type(index_key) == 'set' then
  for _, name in ipairs(redis.call('SMEMBERS', index_key)) do
    redis.call('EXPIRE', channel_prefix .. name, ttl)
  end
end
redis.call('EXPIRE', index_key, ttl)
if key_type(feedback_key) == 'set' then
  local pending = is_a(FEEDBACK_PENDING, 'zset')
  for _, feedback_id in ipairs(redis.call('SMEMBERS', feedback_key)) do
    redis.call('EXPIRE', FEEDBACK_KEY_HEAD .. feedback_id, ttl)
    if pending then redis.call('ZREM', FEEDBACK_PENDING, feedback_id) end
  end
end
for i = 4, #ARGV do redis.call('EXPIRE', ARGV[i], ttl) end
return EXPIRED
