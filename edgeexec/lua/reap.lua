-- reap: declare agents silent for longer than the liveness timeout lost.
-- Their unstarted jobs go back to pending (and are placed elsewhere); their running jobs are
-- returned to the caller, which fails them only if the task's own Airflow heartbeat is stale too.
-- ARGV: prefix, now, liveness_ms
-- Keys: hb agent:{a} ajobs:{a} job:{id} free:{q} pending:{q}:{s} psizes:{q}
-- Returns {{lost agent names}, {agent, id, ref, kind, started, ...} for running orphans}.
local lost, orphans = {}, {}
for _, name in ipairs(redis.call('ZRANGEBYSCORE', k('hb'), '-inf', NOW - num(ARGV[3]))) do
  local a = k('agent', name)
  if redis.call('HGET', a, 'connected') == '1' then
    redis.call('HSET', a, 'connected', '0', 'accepting', '0', 'state', 'unknown', 'gw', '')
    table.insert(lost, name)
    status_changed(name)
  end
  refresh_free(name)
  for _, id in ipairs(redis.call('SMEMBERS', k('ajobs', name))) do
    local f = redis.call('HMGET', k('job', id), 'state', 'ref', 'kind', 'started')
    if f[1] == 'assigned' then
      release(id)
      enqueue(id)
      place(id)
    elseif f[1] == 'running' then
      for _, v in ipairs({ name, id, str(f[2]), str(f[3]), str(f[4]) }) do table.insert(orphans, v) end
    else
      redis.call('SREM', k('ajobs', name), id)
    end
  end
  if redis.call('SCARD', k('ajobs', name)) == 0 then redis.call('ZREM', k('hb'), name) end
end
return { lost, orphans }
