-- Take off a sorted-set index (`{prefix}:runs`, `{prefix}:feedback:index`) the entries
-- whose own key is gone (their data expired): ARGV[1] .. member .. ARGV[2] names it.
-- Looks at up to ARGV[5] entries scored in (ARGV[3], ARGV[4]] (ARGV[3] '-inf': from the
-- start), in one step, so an entry whose key came back meanwhile (its session submitted
-- again) stays. Returns {taken off, looked at, last score looked at}, or
-- {WRONG_TYPE, ...}.
local index_key = KEYS[1]
local head = ARGV[1]
local tail = ARGV[2]
local after = ARGV[3]
local before = ARGV[4]
local limit = tonumber(ARGV[5])

local wrong = wrong_types({index_key, 'zset'})
if wrong then return wrong end
local low = after == '-inf' and after or ('(' .. after)
local entries = redis.call('ZRANGEBYSCORE', index_key, low, before, 'WITHSCORES', 'LIMIT', 0,
                           limit)
local gone = {}
for i = 1, #entries, 2 do
  if redis.call('EXISTS', head .. entries[i] .. tail) == 0 then
    gone[#gone + 1] = entries[i]
  end
end
local removed = 0
for first = 1, #gone, 1000 do  -- unpack takes a bounded number of values
  removed = removed + redis.call('ZREM', index_key,
                                 unpack(gone, first, math.min(first + 999, #gone)))
end
return {removed, #entries / 2, entries[#entries] or ''}
