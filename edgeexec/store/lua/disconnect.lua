-- disconnect: an agent's session ended. Its jobs stay with it until it reconnects (and reports
-- them) or the reaper declares it lost; no new work is dispatched to it meanwhile.
-- A socket that closed without 'bye' is stronger evidence than silence: the agent gets `grace_ms`
-- to reconnect before the reaper treats it as lost (rather than the full liveness timeout).
-- ARGV: prefix, now, then the fields of Disconnect in edgeexec/store/scripts.py (their meaning is
--       documented there), bound to locals of the same names below.
-- Keys: agent:{a} free:{q} hb
local agent, session, clean, liveness_ms, grace_ms = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local a = k('agent', agent)
if redis.call('HGET', a, 'session') ~= session then return 0 end
local state = redis.call('HGET', a, 'state')
local offline = 'offline'
if state and string.find(state, 'maintenance') then offline = 'offline maintenance' end
redis.call('HSET', a, 'connected', '0', 'accepting', '0', 'state', offline, 'seen', NOW, 'gw', '')
refresh_free(agent)
status_changed(agent)
if clean == '1' and redis.call('SCARD', k('ajobs', agent)) == 0 then
  redis.call('ZREM', k('hb'), agent)
elseif clean ~= '1' then
  local score = NOW + num(grace_ms)
  local cur = redis.call('ZSCORE', k('hb'), agent)
  if cur and tonumber(cur) > score then redis.call('ZADD', k('hb'), score, agent) end
end
return 1
