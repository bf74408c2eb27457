-- heartbeat: liveness, metrics and the agent's own state; refills its free slots.
-- ARGV: prefix, now, agent, session, state, comments ('\0' = unchanged), metrics_json ('' = unchanged)
-- Keys: agent:{a} hb free:{q} (+ those of claim() in lib.lua)
-- Returns {status, {claimed id, slots, payload, enq_ms, ...}, {assigned-but-unstarted id, slots, payload, enq_ms, ...},
--          {cancel id, reason, ...}}: the third list lets a gateway resend a 'run' whose pub/sub notice it
-- missed, the fourth re-sends every cancel until the agent reports the job finished.
local name = ARGV[3]
local a = k('agent', name)
if redis.call('HGET', a, 'session') ~= ARGV[4] or redis.call('HGET', a, 'connected') ~= '1' then
  return { 'stale', {}, {}, {} }
end
local state = ARGV[5]
redis.call('HSET', a, 'state', state, 'seen', NOW, 'accepting', ACCEPTING[state] and '1' or '0',
  'maintenance', in_maintenance(state) and '1' or '0')
if ARGV[6] ~= '\0' then redis.call('HSET', a, 'comments', ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HSET', a, 'metrics', ARGV[7]) end
redis.call('ZADD', k('hb'), NOW + num(redis.call('HGET', a, 'live')), name)
refresh_free(name)
local claimed = claim(name, num(redis.call('HGET', a, 'conc')))
local waiting, cancels = {}, {}
for _, id in ipairs(redis.call('SMEMBERS', k('ajobs', name))) do
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
status_changed(name)
return { 'ok', claimed, waiting, cancels }
