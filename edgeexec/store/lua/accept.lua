-- accept: the agent claims an assigned job; on 'ok' the gateway tells it to start the process.
-- A claim is the only way a job becomes running, so a job re-placed elsewhere (the reaper, a
-- reject) or revoked before the claim arrived never starts on this agent.
-- ARGV: prefix, now, then the fields of Accept in edgeexec/store/scripts.py (their meaning is
--       documented there), bound to locals of the same names below.
-- Keys: job:{id} events:{owner}
-- Returns 'ok' (now running here), 'foreign' (not this agent's job: drop it there) or
-- 'finished' (already terminal, or revoked before it started and now cancelled: drop it there).
local agent, id, ttl_ms = ARGV[3], ARGV[4], ARGV[5]
local j = k('job', id)
local f = redis.call('HMGET', j, 'agent', 'state', 'cancel')
if not f[2] or f[1] ~= agent then return 'foreign' end
if TERMINAL[f[2]] then return 'finished' end
if f[2] == 'assigned' then
  if f[3] then
    finish(id, 'cancelled', f[3], '', num(ttl_ms))
    status_changed(agent)
    return 'finished'
  end
  redis.call('HSET', j, 'state', 'running', 'started', NOW, 'upd', NOW)
  emit(id, 'running', '', '')
  status_changed(agent)
end
return 'ok'
