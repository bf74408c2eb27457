-- reject: the agent cannot take an assigned job; return it to pending and stop dispatching to
-- the agent until its next heartbeat or status frame says it accepts work again.
-- ARGV: prefix, now, then the fields of Reject in edgeexec/store/scripts.py (their meaning is
--       documented there), bound to locals of the same names below.
-- Keys: job:{id} agent:{a} ajobs:{a} free:{q} pending:{q}:{s} psizes:{q}
local agent, id = ARGV[3], ARGV[4]
local f = redis.call('HMGET', k('job', id), 'agent', 'state')
if f[1] ~= agent or f[2] ~= 'assigned' then return 'ignored' end
redis.call('HSET', k('agent', agent), 'accepting', '0')
release(id)
enqueue(id)
place(id)
return 'ok'
