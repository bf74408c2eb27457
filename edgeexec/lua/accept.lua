-- accept: the agent started an assigned job.
-- ARGV: prefix, now, agent, id
-- Keys: job:{id} events:{owner}
-- Returns 'ok' (now running), 'foreign' (not this agent's job: cancel it there) or
-- 'finished' (already terminal, e.g. revoked meanwhile: cancel it there).
local j = k('job', ARGV[4])
local f = redis.call('HMGET', j, 'agent', 'state')
if not f[2] or f[1] ~= ARGV[3] then return 'foreign' end
if TERMINAL[f[2]] then return 'finished' end
if f[2] == 'assigned' then
  redis.call('HSET', j, 'state', 'running', 'started', NOW, 'upd', NOW)
  emit(ARGV[4], 'running', '', '')
  status_changed(ARGV[3])
end
return 'ok'
