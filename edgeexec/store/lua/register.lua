-- register: an agent's hello. Refuses a second live agent with the same name, otherwise takes
-- the name over (a restarted or reconnected agent is accepted at once) and reconciles jobs.
-- ARGV: prefix, now, then the fields of Register in edgeexec/store/scripts.py (their meaning is
--       documented there), bound to locals of the same names below.
-- The agent's liveness window (its gateway's setting) is kept in its record ('live'): the reaper
-- uses each agent's own window, and hb scores are deadlines on Redis' clock, never host clocks.
-- Keys: agent:{a} agents hb ajobs:{a} job:{id} free:{q} pending:{q}:{s} psizes:{q} events:{owner}
-- An agent recorded in maintenance stays in maintenance (and keeps its comments) across restarts:
-- it takes no work until told otherwise, and the gateway hands the flag back in `welcome`.
-- An operator's `maintenance off` recorded while the agent was away ('mop' = 'off') wins over the
-- state the agent still reports: it is cleared here and `welcome` tells the agent.
-- Returns {'conflict', other_session} or
--         {'ok', {foreign ids}, {claimed id, slots, payload, enq_ms, ...}, maintenance '1'|'0', comments,
--          returning '1'|'0' (the agent had a session before), {held ids}, {cancel id, reason, ...},
--          maintenance_cleared '1'|'0'}.
-- foreign: jobs the agent runs that are not (or no longer) its own, e.g. failed by the executor
-- meanwhile: the gateway cancels them. held: the agent's running jobs, which its session may
-- report and stream logs for. cancels: held jobs revoked while the agent was away.
local agent, session, gateway, instance, queues, concurrency, state, comments, liveness_ms, reported, versions,
  ttl_ms, token_queues = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11],
  ARGV[12], ARGV[13], ARGV[14], ARGV[15]
local live = num(liveness_ms)
local a = k('agent', agent)
local cur = redis.call('HMGET', a, 'connected', 'instance', 'seen', 'session', 'queues', 'maintenance', 'comments',
  'mop')
if cur[1] == '1' and cur[2] ~= instance and NOW - num(cur[3]) < live then
  return { 'conflict', str(cur[4]) }
end
local cleared = cur[8] == 'off'
if cleared then
  cur[6] = '0'
  if in_maintenance(state) then state, comments = 'idle', '' end
end
local maintenance = in_maintenance(state) or cur[6] == '1'
if maintenance and not in_maintenance(state) then
  state = 'maintenance pending'
  if comments == '' then comments = str(cur[7]) end
end
-- leave the free sets of queues this agent no longer serves
for _, q in ipairs(cjson.decode(cur[5] or '[]')) do redis.call('ZREM', k('free', q), agent) end
redis.call('HSET', a, 'name', agent, 'session', session, 'gw', gateway, 'instance', instance,
  'queues', queues, 'conc', concurrency, 'state', state, 'comments', comments, 'connected', '1',
  'maintenance', maintenance and '1' or '0',
  'accepting', ACCEPTING[state] and '1' or '0', 'seen', NOW, 'versions', versions, 'since', NOW,
  'live', live, 'tokq', str(token_queues))
redis.call('HDEL', a, 'mop')
redis.call('SADD', k('agents'), agent)
redis.call('ZADD', k('hb'), NOW + live, agent)
reported = cjson.decode(reported)
local requeue, used, held, cancels = {}, 0, {}, {}
for _, id in ipairs(redis.call('SMEMBERS', k('ajobs', agent))) do
  local st = redis.call('HGET', k('job', id), 'state')
  local r = reported[id]
  if not st or TERMINAL[st] then
    redis.call('SREM', k('ajobs', agent), id)
  elseif r == 'assigned' or (r == nil and st == 'assigned') then
    -- never started here (not listed, or claimed while its start frame was lost): back to pending,
    -- unless it was revoked meanwhile
    redis.call('SREM', k('ajobs', agent), id)
    local why = redis.call('HGET', k('job', id), 'cancel')
    if why then finish(id, 'cancelled', why, '', num(ttl_ms)) else table.insert(requeue, id) end
  elseif r == nil then
    redis.call('SREM', k('ajobs', agent), id)
    finish(id, 'failed', 'agent ' .. agent .. ' restarted and no longer runs this job', '', num(ttl_ms))
  else
    if r == 'running' and st == 'assigned' then
      redis.call('HSET', k('job', id), 'state', 'running', 'started', NOW, 'upd', NOW)
      emit(id, 'running', '', '')
    end
    used = used + num(redis.call('HGET', k('job', id), 'slots'))
    table.insert(held, id)
    local why = redis.call('HGET', k('job', id), 'cancel')
    if why then
      table.insert(cancels, id)
      table.insert(cancels, why)
    end
  end
end
redis.call('HSET', a, 'used', used)
local foreign = {}
for id, r in pairs(reported) do
  if r == 'running' then
    local f = redis.call('HMGET', k('job', id), 'agent', 'state')
    if f[1] ~= agent or not f[2] or TERMINAL[f[2]] then table.insert(foreign, id) end
  end
end
for _, id in ipairs(requeue) do enqueue(id) end
refresh_free(agent)
-- this agent gets first pick (its session is not listening for notices yet); others get the rest
local claimed = claim(agent, num(concurrency))
for _, id in ipairs(requeue) do
  if redis.call('HGET', k('job', id), 'state') == 'pending' then place(id) end
end
status_changed(agent)
return { 'ok', foreign, claimed, maintenance and '1' or '0', comments, cur[4] and '1' or '0', held, cancels,
  cleared and '1' or '0' }
