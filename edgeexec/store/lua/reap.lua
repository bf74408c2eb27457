-- reap: declare agents silent for longer than the liveness timeout lost.
-- Their unstarted jobs go back to pending (and are placed elsewhere); their running jobs are
-- returned to the caller, which fails them only if the task's own Airflow heartbeat is stale too.
-- hb scores are each agent's deadline (last heartbeat + its own liveness window, on Redis' clock).
-- It also keeps the calling scheduler's stream alive and deletes the event streams of schedulers
-- that have not swept for owner_ttl_ms (gone: their jobs are adopted by ref, not by stream).
-- ARGV: prefix, now, then the fields of Reap in edgeexec/store/scripts.py (their meaning is
--       documented there), bound to locals of the same names below.
-- Keys: hb agent:{a} ajobs:{a} job:{id} free:{q} pending:{q}:{s} psizes:{q} owner:{o} owners events:{o}
-- Returns {{lost agent names}, {agent, id, ref, kind, started, ...} for running orphans}.
local liveness_ms, owner, owner_ttl_ms = ARGV[3], ARGV[4], ARGV[5]
if owner and owner ~= '' then
  redis.call('SET', k('owner', owner), NOW, 'PX', math.max(num(owner_ttl_ms), 1))
  redis.call('SADD', k('owners'), owner)
  for _, o in ipairs(redis.call('SRANDMEMBER', k('owners'), 16)) do
    if redis.call('EXISTS', k('owner', o)) == 0 then
      redis.call('DEL', k('events', o))
      redis.call('SREM', k('owners'), o)
    end
  end
end
local lost, orphans = {}, {}

local function reap_one(name)
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

local due = redis.call('ZRANGEBYSCORE', k('hb'), '-inf', NOW, 'WITHSCORES')
for i = 1, #due, 2 do
  -- a gateway older than per-agent windows scores hb with the last heartbeat ('seen'), a current
  -- one with a deadline after it: an old-layout score is due only after this scheduler's own
  -- window (rolling upgrades, in either order)
  local score = tonumber(due[i + 1])
  local old_layout = score <= num(redis.call('HGET', k('agent', due[i]), 'seen'))
  if not old_layout or score + num(liveness_ms) <= NOW then reap_one(due[i]) end
end
return { lost, orphans }
