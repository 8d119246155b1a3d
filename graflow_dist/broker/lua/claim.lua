-- A worker claims up to `max_jobs` jobs: each leaves the queue only together with its
-- lease (no window in which a crash loses it). Returns
-- {jobs left in the queue, id1, data1, run status1, id2, ...} (see `claim_jobs`), or
-- {WRONG_TYPE, ...} if a key of the worker's own is of the wrong type (then nothing
-- changes).
local queue_key = KEYS[1]
local leases_key = KEYS[2]
local owners_key = KEYS[3]
local wake_key = KEYS[4]
local worker_key = KEYS[5]

local wrong = wrong_types({queue_key, 'list', leases_key, 'zset', owners_key, 'hash',
                           wake_key, 'list', worker_key, 'hash'})
if wrong then return wrong end
return claim_jobs(queue_key, leases_key, owners_key, wake_key, worker_key, ARGV[1], ARGV[2],
                  tonumber(ARGV[3]), ARGV[4])
