-- The coordinator's commit: apply a list of commands only while the caller holds the
-- leader lease, and only on the state the caller last committed. The commit counter
-- differing from the caller's count means Redis lost acknowledged writes (a crash
-- between fsyncs, a failover to a lagging replica): the caller's in-memory frontier
-- is ahead of Redis and must reload.
--
-- Lua does not roll back: everything that could fail half-way is checked before the
-- first write (command length, key types, and the ACL where Redis can tell), so a
-- commit is applied whole or not at all. Returns the number of commands that failed
-- anyway, or NOT_LEADER, STATE_BEHIND, COMMITTED_BEFORE (the counter is one past the
-- caller's), COMMAND_TOO_LONG, {WRONG_TYPE, key, type, ...}
-- or {PERMISSION_DENIED, command, key}, or STAGED_INCOMPLETE when a large commit,
-- written ahead to `staged_key`, is not `staged_length` bytes long.
local leader_key = KEYS[1]
local commits_key = KEYS[2]
local staged_key = KEYS[3]
local leader_id = ARGV[1]
local payload = ARGV[2]
local expected_commits = ARGV[3]
local staged_length = tonumber(ARGV[4] or '0')

local wrong = wrong_types({leader_key, 'string', commits_key, 'string'})
if wrong then return wrong end
if redis.call('GET', leader_key) ~= leader_id then return NOT_LEADER end
local commits = redis.call('GET', commits_key) or '0'
if commits ~= expected_commits then
  -- one more than the leader counts: this very commit, sent again after its reply was
  -- lost, landed the first time (nobody else commits while it leads)
  if tonumber(commits) == tonumber(expected_commits) + 1 then return COMMITTED_BEFORE end
  return STATE_BEHIND
end
if staged_length > 0 then
  wrong = wrong_types({staged_key, 'string'})
  if wrong then return wrong end
  payload = redis.call('GET', staged_key) or ''
  redis.call('DEL', staged_key)
  if #payload ~= staged_length then return STAGED_INCOMPLETE end
end
local commands = unpack_commands(payload)
for i = 1, #commands do
  -- unpack() would fail half-way through the commit: write nothing instead
  if #commands[i] > MAX_COMMAND_ARGS then return COMMAND_TOO_LONG end
end
local checks = command_checks(commands)
wrong = wrong_types(checks)
if wrong then return wrong end
if redis.acl_check_cmd then  -- Redis 7+: the ACL, before anything is written
  if not redis.acl_check_cmd('INCR', commits_key) then
    return {PERMISSION_DENIED, 'INCR', commits_key}
  end
  for i = 1, #commands do
    if not redis.acl_check_cmd(unpack(commands[i])) then
      return {PERMISSION_DENIED, commands[i][1], commands[i][2] or ''}
    end
  end
end
redis.call('INCR', commits_key)
local failed = 0
for i = 1, #commands do
  local reply = redis.pcall(unpack(commands[i]))
  if type(reply) == 'table' and reply.err then failed = failed + 1 end
end
return failed
