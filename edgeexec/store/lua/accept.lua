-- accept: the agent claims an assigned job; on 'ok' the gateway tells it to start the process.
-- A claim is the only way a job becomes running, so a job re-placed elsewhere (the reaper, a
-- reject) or revoked before the claim arrived never starts on this agent.
-- ARGV: prefix, now, agent, id, ttl_ms
-- Keys: job:{id} events:{owner}
-- Returns 'ok' (now running here), 'foreign' (not this agent's job: drop it there) or
-- 'finished' (already terminal, or revoked before it started and now cancelled: drop it there).
local j = k('job', ARGV[4])
local f = redis.call('HMGET', j, 'agent', 'state', 'cancel')
if not f[2] or f[1] ~= ARGV[3] then return 'foreign' end
if TERMINAL[f[2]] then return 'finished' end
if f[2] == 'assigned' then
  if f[3] then
    finish(ARGV[4], 'cancelled', f[3], '', num(ARGV[5]))
    status_changed(ARGV[3])
    return 'finished'
  end
  redis.call('HSET', j, 'state', 'running', 'started', NOW, 'upd', NOW)
  emit(ARGV[4], 'running', '', '')
  status_changed(ARGV[3])
end
return 'ok'
