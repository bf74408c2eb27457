-- adopt: a restarted scheduler takes over workloads queued by its predecessor.
-- ARGV: prefix, now, then the fields of Adopt in edgeexec/store/scripts.py (their meaning is
--       documented there), bound to locals of the same names below.
-- Keys: ref:{ref} job:{id} events:{owner}
-- refs: 'ref<TAB>expected id' ('' = the ref's newest job); see Adopt in scripts.py.
-- Returns {ref, id, state, ...} for every ref that still has that job; a job that finished while
-- nobody owned it re-emits its final state to the new owner so the result is not lost.
local owner = ARGV[3]
local refs_from = 4  -- refs: ARGV[refs_from..] (read in place: unpack() stops at 8 000 values)
local out = {}
for i = refs_from, #ARGV do
  local entry = ARGV[i]
  local ref, expected = string.match(entry, '^([^\t]*)\t?(.*)$')
  local id = redis.call('GET', k('ref', ref))
  if id and expected ~= '' and id ~= expected then id = nil end  -- an earlier job of the ref, not this try's
  local st = id and redis.call('HGET', k('job', id), 'state')
  if st then
    redis.call('HSET', k('job', id), 'owner', owner)
    if TERMINAL[st] or st == 'running' then
      local f = redis.call('HMGET', k('job', id), 'reason', 'exit')
      emit(id, st, f[1], f[2])
    end
    for _, v in ipairs({ ref, id, st }) do table.insert(out, v) end
  end
end
return out
