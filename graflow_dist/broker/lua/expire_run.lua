-- Give a finished run's data a TTL, unless its session was submitted again meanwhile
-- (its incarnation changed: the data is live). The run's channel keys come from its
-- channel index, its feedback requests from its feedback set: no SCAN of the keyspace.
-- A call expires about `chunk` channel keys (SSCAN of the index from `cursor`), so a
-- run of 200,000 tasks never blocks Redis for long: {MORE, next cursor} asks for
-- another call; the last one expires the rest and takes the session off the index of
-- runs waiting for their TTL (a run submitted again stays there: the coordinator
-- looks at what it is now). Returns {EXPIRED | RESUBMITTED | MORE, cursor}.
local meta_key = KEYS[1]
local index_key = KEYS[2]
local feedback_key = KEYS[3]
local expiring_key = KEYS[4]
local incarnation = ARGV[1]
local ttl = ARGV[2]
local channel_prefix = ARGV[3]
local cursor = ARGV[4]
local chunk = ARGV[5]
local session = ARGV[6]
-- ARGV[7..]: the run's other keys (frontier, task records, its graph's code)

if key_type(meta_key) ~= 'hash'
    or (redis.call('HGET', meta_key, F_RUN_INCARNATION) or '') ~= incarnation then
  return {RESUBMITTED, '0'}
end
if key_type(index_key) == 'set' then
  local page = redis.call('SSCAN', index_key, cursor, 'COUNT', chunk)
  for _, name in ipairs(page[2]) do
    redis.call('EXPIRE', channel_prefix .. name, ttl)
  end
  if page[1] ~= '0' then return {MORE, page[1]} end
end
redis.call('EXPIRE', index_key, ttl)
if key_type(feedback_key) == 'set' then
  local pending = is_a(FEEDBACK_PENDING, 'zset')
  for _, feedback_id in ipairs(redis.call('SMEMBERS', feedback_key)) do
    redis.call('EXPIRE', FEEDBACK_KEY_HEAD .. feedback_id, ttl)
    if pending then redis.call('ZREM', FEEDBACK_PENDING, feedback_id) end
  end
end
for i = 7, #ARGV do redis.call('EXPIRE', ARGV[i], ttl) end
if is_a(expiring_key, 'zset') then redis.call('ZREM', expiring_key, session) end
return {EXPIRED, '0'}
