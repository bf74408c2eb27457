-- forget: an operator removes an offline agent's record, as if it had never registered (its name,
-- queues, comments and metrics disappear from every view). Refused while the agent is connected
-- (it would register again at once) or still holds jobs (the reaper or their results settle them).
-- ARGV: prefix, now, then the fields of Forget in edgeexec/store/scripts.py (their meaning is
--       documented there), bound to locals of the same names below.
-- Keys: agent:{a} ajobs:{a} agents hb free:{q}
-- Returns 'forgotten', 'unknown', 'connected' or 'busy'.
local agent = ARGV[3]
local a = k('agent', agent)
local f = redis.call('HMGET', a, 'connected', 'queues')
if redis.call('EXISTS', a) == 0 and redis.call('SISMEMBER', k('agents'), agent) == 0 then return 'unknown' end
if f[1] == '1' then return 'connected' end
if redis.call('SCARD', k('ajobs', agent)) > 0 then return 'busy' end
for _, q in ipairs(cjson.decode(f[2] or '[]')) do redis.call('ZREM', k('free', q), agent) end
redis.call('DEL', a, k('ajobs', agent))
redis.call('ZREM', k('hb'), agent)
redis.call('SREM', k('agents'), agent)
status_changed(agent)
return 'forgotten'
