-- reject: the agent cannot take an assigned job; return it to pending and stop dispatching to
-- the agent until its next heartbeat or status frame says it accepts work again.
-- ARGV: prefix, now, agent, id
-- Keys: job:{id} agent:{a} ajobs:{a} free:{q} pending:{q}:{s} psizes:{q}
local id = ARGV[4]
local f = redis.call('HMGET', k('job', id), 'agent', 'state')
if f[1] ~= ARGV[3] or f[2] ~= 'assigned' then return 'ignored' end
redis.call('HSET', k('agent', ARGV[3]), 'accepting', '0')
release(id)
enqueue(id)
place(id)
return 'ok'
