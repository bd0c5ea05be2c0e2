-- Record one consumption in the ledger, once per job id: a job run again (after a worker
-- crash, say) finds its entry and changes nothing.
--
-- KEYS: ledger hash (job id -> entry), totals hash ("queue:item" -> count)
-- ARGV: job id, entry (json), totals field
-- Returns {1, entry} when recorded now, {0, entry} with the earlier entry otherwise.
if redis.call("hsetnx", KEYS[1], ARGV[1], ARGV[2]) == 1 then
    redis.call("hincrby", KEYS[2], ARGV[3], 1)
    return {1, ARGV[2]}
end
return {0, redis.call("hget", KEYS[1], ARGV[1])}
