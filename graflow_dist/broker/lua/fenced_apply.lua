-- The coordinator's commit: apply a list of commands only while the caller holds the
-- leader lease, and only on the state the caller last committed. The commit counter
-- differing from the caller's count means Redis lost acknowledged writes (a crash
-- between fsyncs, a failover to a lagging replica): the caller's in-memory frontier
-- is ahead of Redis and must reload.
local leader_key = KEYS[1]
local commits_key = KEYS[2]
local leader_id = ARGV[1]
local commands = cmsgpack.unpack(ARGV[2])
local expected_commits = ARGV[3]

if redis.call('GET', leader_key) ~= leader_id then return NOT_LEADER end
if (redis.call('GET', commits_key) or '0') ~= expected_commits then return STATE_BEHIND end
for i = 1, #commands do
  -- unpack() would fail half-way through the commit: write nothing instead
  if #commands[i] > MAX_COMMAND_ARGS then return COMMAND_TOO_LONG end
end
redis.call('INCR', commits_key)
local failed = 0
for i = 1, #commands do
  local reply = redis.pcall(unpack(commands[i]))
  if type(reply) == 'table' and reply.err then failed = failed + 1 end
end
return failed
