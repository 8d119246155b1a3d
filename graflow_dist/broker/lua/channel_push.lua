-- A channel's append or prepend, applied once even if it is sent again (its reply
-- lost: redis-py sends it again on a new connection). `done_key` marks this call
-- (an id of its own) applied, with the list's length then; `answered_key` (optional)
-- is the mark of the caller's previous write, whose reply came: no longer needed.
-- Returns that length, or {WRONG_TYPE, list key, type} having written nothing (a value
-- stored with `set`: the caller makes it a list and calls again).
local list_key = KEYS[1]
local index_key = KEYS[2]
local done_key = KEYS[3]
local answered_key = KEYS[4]
local name = ARGV[1]
local value = ARGV[2]
local front = ARGV[3] == '1'
local ttl = ARGV[4]  -- '': none
local done_ttl = ARGV[5]

local done = redis.call('GET', done_key)
if done then return tonumber(done) end
local wrong = wrong_types({list_key, 'list', index_key, 'set'})
if wrong then return wrong end
redis.call('SADD', index_key, name)
local length = redis.call(front and 'LPUSH' or 'RPUSH', list_key, value)
if ttl ~= '' then redis.call('EXPIRE', list_key, ttl) end
redis.call('SET', done_key, length, 'EX', done_ttl)
if answered_key then redis.call('DEL', answered_key) end
return length
