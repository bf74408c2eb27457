-- oversized: find pending jobs that need more slots than any connected agent of their queue has.
-- ARGV: prefix, now (Oversized in edgeexec/store/scripts.py takes nothing else).
-- Keys: queues psizes:{q} pending:{q}:{s} agents agent:{a} job:{id}
-- Such a job keeps waiting (an agent with more slots may still connect) until the scheduler's
-- [scheduler] task_queued_timeout revokes it. It is reported once: the job gets a 'blocked'
-- reason (shown in its task log and the status stream) and is returned to the executor, which
-- logs it. Only sizes above 1 are checked, so tasks with pool_slots=1 cost nothing here.
local largest = nil
local function largest_on(q)
  if largest == nil then
    largest = {}
    for _, name in ipairs(redis.call('SMEMBERS', k('agents'))) do
      local f = redis.call('HMGET', k('agent', name), 'connected', 'conc', 'queues')
      if f[1] == '1' then
        for _, aq in ipairs(cjson.decode(f[3] or '[]')) do
          largest[aq] = math.max(largest[aq] or 0, num(f[2]))
        end
      end
    end
  end
  return largest[q] or 0
end

local out = {}
for _, q in ipairs(redis.call('SMEMBERS', k('queues'))) do
  for _, s in ipairs(redis.call('ZRANGEBYSCORE', k('psizes', q), 2, '+inf')) do
    local most = largest_on(q)
    if num(s) > most then
      for _, member in ipairs(redis.call('ZRANGE', k('pending', q, s), 0, -1)) do
        local id = string.sub(member, 22)
        local j = k('job', id)
        if redis.call('HEXISTS', j, 'blocked') == 0 then
          local why = string.format('needs %s slots, but the largest connected agent serving queue %q has %d; '
            .. 'it waits for a larger agent until [scheduler] task_queued_timeout', s, q, most)
          redis.call('HSET', j, 'blocked', why)
          for _, v in ipairs({ id, redis.call('HGET', j, 'ref') or '', why }) do table.insert(out, v) end
        end
      end
    end
  end
end
return out
