-- finish: a job reached a terminal state; release its slots and refill the agent.
-- ARGV: prefix, now, then the fields of Finish in edgeexec/store/scripts.py (their meaning is
--       documented there), bound to locals of the same names below.
-- Keys: job:{id} ref:{ref} agent:{a} ajobs:{a} free:{q} events:{owner} (+ those of claim() in lib.lua)
-- Returns {status, {id, slots, payload, enq_ms, ...}} where status is ok|duplicate|unknown|foreign.
local agent, id, state, reason, exit, ttl_ms, max_jobs = ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8],
  ARGV[9]
if agent ~= '' then
  local owner = redis.call('HGET', k('job', id), 'agent')
  if owner and owner ~= agent then return { 'foreign', {} } end
end
local holder = redis.call('HGET', k('job', id), 'agent')
local status = finish(id, state, reason, exit, num(ttl_ms))
if holder and holder ~= '' then status_changed(holder) end
if agent ~= '' then return { status, claim(agent, num(max_jobs)) } end
return { status, {} }
