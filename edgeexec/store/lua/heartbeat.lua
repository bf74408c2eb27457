-- heartbeat: liveness, metrics and the agent's own state; refills its free slots.
-- ARGV: prefix, now, then the fields of Heartbeat in edgeexec/store/scripts.py (their meaning is
--       documented there), bound to locals of the same names below.
-- Keys: agent:{a} hb free:{q} (+ those of claim() in lib.lua)
-- Returns {status, {claimed id, slots, payload, enq_ms, ...}, {assigned-but-unstarted id, slots, payload, enq_ms, ...},
--          {cancel id, reason, ...}}: the third list lets a gateway resend a 'run' whose pub/sub notice it
-- missed, the fourth re-sends every cancel until the agent reports the job finished.
local agent, session, state, comments, metrics = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local a = k('agent', agent)
if redis.call('HGET', a, 'session') ~= session or redis.call('HGET', a, 'connected') ~= '1' then
  return { 'stale', {}, {}, {} }
end
redis.call('HSET', a, 'state', state, 'seen', NOW, 'accepting', ACCEPTING[state] and '1' or '0',
  'maintenance', in_maintenance(state) and '1' or '0')
if comments ~= '\0' then redis.call('HSET', a, 'comments', comments) end
if metrics ~= '' then redis.call('HSET', a, 'metrics', metrics) end
redis.call('ZADD', k('hb'), NOW + num(redis.call('HGET', a, 'live')), agent)
refresh_free(agent)
local claimed = claim(agent, num(redis.call('HGET', a, 'conc')))
local waiting, cancels = {}, {}
for _, id in ipairs(redis.call('SMEMBERS', k('ajobs', agent))) do
  local f = redis.call('HMGET', k('job', id), 'state', 'slots', 'payload', 'enq', 'cancel')
  if f[5] then
    table.insert(cancels, id)
    table.insert(cancels, f[5])
  elseif f[1] == 'assigned' then
    table.insert(waiting, id)
    table.insert(waiting, num(f[2]))
    table.insert(waiting, str(f[3]))
    table.insert(waiting, str(f[4]))
  end
end
status_changed(agent)
return { 'ok', claimed, waiting, cancels }
