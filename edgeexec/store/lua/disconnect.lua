-- disconnect: an agent's session ended. Its jobs stay with it until it reconnects (and reports
-- them) or the reaper declares it lost; no new work is dispatched to it meanwhile.
-- A socket that closed without 'bye' is stronger evidence than silence: the agent gets `grace_ms`
-- to reconnect before the reaper treats it as lost (rather than the full liveness timeout).
-- ARGV: prefix, now, agent, session, clean ('1' = the agent said bye), liveness_ms (unused: the
--       record's own 'live' counts), grace_ms
-- Keys: agent:{a} free:{q} hb
local a = k('agent', ARGV[3])
if redis.call('HGET', a, 'session') ~= ARGV[4] then return 0 end
local state = redis.call('HGET', a, 'state')
local offline = 'offline'
if state and string.find(state, 'maintenance') then offline = 'offline maintenance' end
redis.call('HSET', a, 'connected', '0', 'accepting', '0', 'state', offline, 'seen', NOW, 'gw', '')
refresh_free(ARGV[3])
status_changed(ARGV[3])
if ARGV[5] == '1' and redis.call('SCARD', k('ajobs', ARGV[3])) == 0 then
  redis.call('ZREM', k('hb'), ARGV[3])
elseif ARGV[5] ~= '1' then
  local score = NOW + num(ARGV[7])
  local cur = redis.call('ZSCORE', k('hb'), ARGV[3])
  if cur and tonumber(cur) > score then redis.call('ZADD', k('hb'), score, ARGV[3]) end
end
return 1
