-- claim: fill one agent's free slots with the best pending jobs (priority desc, then FIFO).
-- ARGV: prefix, now, agent, max_jobs
-- Keys: agent:{a} psizes:{q} pending:{q}:{s} job:{id} ajobs:{a} free:{q}
-- Returns {id, slots, payload, enq_ms, ...} for the gateway to push as 'run' frames.
return claim(ARGV[3], num(ARGV[4]))
