-- Shared prelude, prepended to every edgeexec script by edgeexec/store/scripts.py.
--
-- Convention: ARGV[1] is the key prefix and ARGV[2] is *now* in milliseconds, or '' for Redis'
-- own clock (what every gateway and scheduler passes: hosts' clocks may disagree, Redis' is one
-- clock for the whole deployment; tests pass explicit times). Script arguments start at ARGV[3].
-- Keys are built here from the prefix (see edgeexec/store/keys.py for the table of keys); edgeexec
-- therefore needs a single Redis (standalone or Sentinel), not Redis Cluster.
--
-- Invariants every script keeps:
--   * a job id is in at most one pending zset, and only while its state is 'pending';
--   * agent.used == sum of slots of the jobs in ajobs:{agent}, and never exceeds agent.conc;
--   * free:{q} holds exactly the connected, accepting agents of queue q with free slots,
--     scored by their free slot count.

local P = ARGV[1]
local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local NOW = tonumber(ARGV[2]) or server_now()
local TERMINAL = { success = true, failed = true, cancelled = true }
local ACCEPTING = { idle = true, running = true }

local function k(...)
  return P .. ':' .. table.concat({ ... }, ':')
end

local function num(x)
  return tonumber(x) or 0
end

local function str(x)
  if x == false or x == nil then return '' end
  return x
end

local function emit(id, state, reason, exit)
  local f = redis.call('HMGET', k('job', id), 'owner', 'ref', 'agent', 'kind')
  if not f[1] or f[1] == '' then return end
  -- never trimmed here: the owning scheduler trims what it has read, and reap.lua deletes the
  -- streams of schedulers gone for longer than job_ttl, so a stalled scheduler loses nothing
  redis.call('XADD', k('events', f[1]), '*',
    'job', id, 'ref', str(f[2]), 'state', state, 'reason', str(reason),
    'exit', str(exit), 'agent', str(f[3]), 'kind', str(f[4]), 'ts', NOW)
end

-- keep free:{q} exact for one agent after any change to its used/conc/accepting/connected
local function refresh_free(name)
  local f = redis.call('HMGET', k('agent', name), 'conc', 'used', 'connected', 'accepting', 'queues')
  local free = num(f[1]) - num(f[2])
  local ok = f[3] == '1' and f[4] == '1'
  for _, q in ipairs(cjson.decode(f[5] or '[]')) do
    if ok and free > 0 then
      redis.call('ZADD', k('free', q), free, name)
    else
      redis.call('ZREM', k('free', q), name)
    end
  end
end

local function unpend(id)
  local f = redis.call('HMGET', k('job', id), 'queue', 'slots', 'member')
  if not f[3] or f[3] == '' then return end
  local pk = k('pending', f[1], f[2])
  redis.call('ZREM', pk, f[3])
  if redis.call('ZCARD', pk) == 0 then redis.call('ZREM', k('psizes', f[1]), f[2]) end
  redis.call('HSET', k('job', id), 'member', '')
end

local function enqueue(id)
  local j = k('job', id)
  local f = redis.call('HMGET', j, 'queue', 'slots', 'prio', 'seq')
  local member = string.format('%020d', num(f[4])) .. '|' .. id
  redis.call('ZADD', k('pending', f[1], f[2]), -num(f[3]), member)
  redis.call('ZADD', k('psizes', f[1]), num(f[2]), f[2])
  redis.call('HSET', j, 'state', 'pending', 'agent', '', 'member', member, 'upd', NOW)
end

local function assign(id, name)
  local j = k('job', id)
  local slots = num(redis.call('HGET', j, 'slots'))
  redis.call('HSET', j, 'state', 'assigned', 'agent', name, 'member', '', 'upd', NOW)
  redis.call('SADD', k('ajobs', name), id)
  redis.call('HINCRBY', k('agent', name), 'used', slots)
end

-- give a job's slots back to its agent (idempotent: only the first call releases)
local function release(id)
  local f = redis.call('HMGET', k('job', id), 'agent', 'slots')
  local name = str(f[1])
  if name ~= '' and redis.call('SREM', k('ajobs', name), id) == 1 then
    local used = redis.call('HINCRBY', k('agent', name), 'used', -num(f[2]))
    if used < 0 then redis.call('HSET', k('agent', name), 'used', 0) end
    refresh_free(name)
  end
  return name
end

-- tell status subscribers (dashboards, `agent status --watch`) that an agent's record changed
local function status_changed(name)
  redis.call('PUBLISH', k('status'), name)
end

local function in_maintenance(state)
  return state ~= nil and state ~= false and string.find(state, 'maintenance', 1, true) ~= nil
end

local function notify(name, msg)
  local gw = redis.call('HGET', k('agent', name), 'gw')
  if gw and gw ~= '' then redis.call('PUBLISH', k('gw', gw), msg) end
end

-- put one pending job on the agent with the most free slots on its queue, if any fits
local function place(id)
  local f = redis.call('HMGET', k('job', id), 'queue', 'slots')
  local cand = redis.call('ZREVRANGEBYSCORE', k('free', f[1]), '+inf', num(f[2]), 'LIMIT', 0, 1)
  if #cand == 0 then return false end
  unpend(id)
  assign(id, cand[1])
  refresh_free(cand[1])
  notify(cand[1], 'run\t' .. cand[1] .. '\t' .. id)
  return cand[1]
end

-- pop the best pending job that fits in `free` slots on any of `queues`
local function best_pending(queues, free)
  local bk, bs, bm, bq, bz = nil, nil, nil, nil, nil
  for _, q in ipairs(queues) do
    for _, s in ipairs(redis.call('ZRANGEBYSCORE', k('psizes', q), 1, free)) do
      local pk = k('pending', q, s)
      local head = redis.call('ZRANGE', pk, 0, 0, 'WITHSCORES')
      if #head > 0 then
        local sc = tonumber(head[2])
        if bs == nil or sc < bs or (sc == bs and head[1] < bm) then
          bk, bs, bm, bq, bz = pk, sc, head[1], q, s
        end
      end
    end
  end
  if bk == nil then return nil end
  local id = string.sub(bm, 22)
  unpend(id)
  return id, num(bz)
end

-- fill an agent's free slots with the best pending jobs; returns {id, slots, payload, enq_ms, ...}
local function claim(name, max)
  local f = redis.call('HMGET', k('agent', name), 'conc', 'used', 'connected', 'accepting', 'queues')
  if f[3] ~= '1' or f[4] ~= '1' then return {} end
  local free = num(f[1]) - num(f[2])
  local queues = cjson.decode(f[5] or '[]')
  local out = {}
  while free > 0 and #out < 4 * max do
    local id, s = best_pending(queues, free)
    if id == nil then break end
    assign(id, name)
    free = free - s
    table.insert(out, id)
    table.insert(out, s)
    local f2 = redis.call('HMGET', k('job', id), 'payload', 'enq')
    table.insert(out, str(f2[1]))
    table.insert(out, str(f2[2]))
  end
  refresh_free(name)
  return out
end

-- move a job to a terminal state exactly once; the workload (and its token) is dropped
local function finish(id, state, reason, exit, ttl)
  local j = k('job', id)
  local cur = redis.call('HGET', j, 'state')
  if not cur then return 'unknown' end
  if TERMINAL[cur] then return 'duplicate' end
  if cur == 'pending' then unpend(id) end
  release(id)
  redis.call('HSET', j, 'state', state, 'reason', str(reason), 'exit', str(exit), 'upd', NOW)
  redis.call('HDEL', j, 'payload', 'cancel')
  emit(id, state, reason, exit)
  redis.call('PEXPIRE', j, ttl)
  local ref = redis.call('HGET', j, 'ref')
  if ref and redis.call('GET', k('ref', ref)) == id then redis.call('PEXPIRE', k('ref', ref), ttl) end
  return 'ok'
end
