-- submit: add a job and place it at once if an agent on its queue has room.
-- ARGV: prefix, now, then the fields of Submit in edgeexec/store/scripts.py (their meaning is
--       documented there), bound to locals of the same names below.
-- Keys: job:{id} ref:{ref} pending:{queue}:{slots} psizes:{queue} queues seq, and on placement
--       agent:{a} ajobs:{a} free:{q}; publishes 'run' on gw:{gateway of a}.
-- A newer submission for the same ref replaces a still-pending older one (scheduler re-queue);
-- an older one already on an agent is left to finish and its events are ignored by the executor.
local id, ref, queue, slots, priority, owner, kind, payload, label = ARGV[3], ARGV[4], ARGV[5], ARGV[6],
  ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11]
label = label or ''  -- absent from an older scheduler's call
local old = redis.call('GET', k('ref', ref))
if old and old ~= id and redis.call('HGET', k('job', old), 'state') == 'pending' then
  unpend(old)
  redis.call('HSET', k('job', old), 'state', 'cancelled', 'reason', 'superseded by ' .. id, 'upd', NOW)
  redis.call('HDEL', k('job', old), 'payload')
  redis.call('PEXPIRE', k('job', old), 86400000)
end
if redis.call('EXISTS', k('job', id)) == 1 then return { 'exists', '' } end
local seq = redis.call('INCR', k('seq'))
redis.call('HSET', k('job', id), 'id', id, 'ref', ref, 'queue', queue, 'slots', slots,
  'prio', priority, 'owner', owner, 'kind', kind, 'payload', payload, 'seq', seq, 'enq', NOW, 'label', label)
redis.call('SET', k('ref', ref), id)
redis.call('SADD', k('queues'), queue)
enqueue(id)
return { 'queued', place(id) or '' }
