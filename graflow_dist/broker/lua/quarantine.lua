-- Move keys that hold another type than graflow-dist keeps there out of the way (the
-- services would trip on them), to QUARANTINE_HEAD .. stamp .. ':' .. key, kept
-- QUARANTINE_TTL_S for inspection. Checked and moved in one step, so two processes
-- repairing at once move each key once. KEYS: the keys; ARGV[1]: a unique stamp;
-- ARGV[1 + i]: the type KEYS[i] must hold. Returns {key, type it held, new name, ...}.
local stamp = ARGV[1]

local out = {}
for i, key in ipairs(KEYS) do
  local actual = key_type(key)
  if actual ~= 'none' and actual ~= ARGV[i + 1] then
    local target = QUARANTINE_HEAD .. stamp .. ':' .. key
    redis.call('RENAME', key, target)
    redis.call('EXPIRE', target, QUARANTINE_TTL_S)
    out[#out + 1] = key
    out[#out + 1] = actual
    out[#out + 1] = target
  end
end
return out
