-- cancel: the scheduler revoked a workload. A pending or assigned (never started) job is cancelled
-- here and its workload dropped; a running job is marked ('cancel' = reason) and its gateway told
-- to stop the process. The mark is re-sent on every heartbeat and registration of the agent until
-- it reports the job finished, so a lost notice only delays the cancel.
-- ARGV: prefix, now, then the fields of Cancel in edgeexec/store/scripts.py (their meaning is
--       documented there), bound to locals of the same names below.
-- Keys: ref:{ref} job:{id} pending:{q}:{s} psizes:{q} events:{owner}; publishes on gw:{gateway}
local ref, reason, ttl_ms = ARGV[3], ARGV[4], ARGV[5]
local id = redis.call('GET', k('ref', ref))
if not id then return 'unknown' end
local f = redis.call('HMGET', k('job', id), 'state', 'agent')
if not f[1] or TERMINAL[f[1]] then return 'finished' end
if f[1] == 'pending' or f[1] == 'assigned' then
  finish(id, 'cancelled', reason, '', num(ttl_ms))
  if f[1] == 'assigned' then
    status_changed(f[2])
    notify(f[2], 'cancel\t' .. f[2] .. '\t' .. id .. '\t' .. reason)
  end
  return 'cancelled'
end
redis.call('HSET', k('job', id), 'cancel', reason)
notify(f[2], 'cancel\t' .. f[2] .. '\t' .. id .. '\t' .. reason)
return 'signalled'
