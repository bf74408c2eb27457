-- finish: a job reached a terminal state; release its slots and refill the agent.
-- ARGV: prefix, now, agent ('' = any: executor-side fail/cancel), id, state, reason, exit, ttl_ms, max_jobs
-- Keys: job:{id} ref:{ref} agent:{a} ajobs:{a} free:{q} events:{owner} (+ those of claim() in lib.lua)
-- Returns {status, {id, slots, payload, enq_ms, ...}} where status is ok|duplicate|unknown|foreign.
local agent, id = ARGV[3], ARGV[4]
if agent ~= '' then
  local owner = redis.call('HGET', k('job', id), 'agent')
  if owner and owner ~= agent then return { 'foreign', {} } end
end
local holder = redis.call('HGET', k('job', id), 'agent')
local status = finish(id, ARGV[5], ARGV[6], ARGV[7], num(ARGV[8]))
if holder and holder ~= '' then status_changed(holder) end
if agent ~= '' then return { status, claim(agent, num(ARGV[9])) } end
return { status, {} }
