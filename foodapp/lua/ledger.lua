-- Record one consumption in the ledger, once per job id: a job run again (after a worker
-- crash, say) finds its entry and changes nothing. Every record also trims up to a batch of
-- entries older than the retention, taking each out of the totals, and keeps the three
-- keys expiring one retention after the last record (see actors/ledger.py).
--
-- KEYS: ledger hash (job id -> entry), totals hash ("queue:item" -> count), index sorted
--       set (job id scored by the Redis time it was recorded)
-- ARGV: job id, entry (json), totals field, retention (s), trim batch
-- Returns {1, entry} when recorded now, {0, entry} with the earlier entry otherwise.
local time = redis.call("time")
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local retention = tonumber(ARGV[4])
local created = redis.call("hsetnx", KEYS[1], ARGV[1], ARGV[2])
if created == 1 then
    redis.call("hincrby", KEYS[2], ARGV[3], 1)
    redis.call("zadd", KEYS[3], now, ARGV[1])
end
local old = redis.call("zrangebyscore", KEYS[3], "-inf", now - retention, "LIMIT", 0, tonumber(ARGV[5]))
for _, job_id in ipairs(old) do
    local stored = redis.call("hget", KEYS[1], job_id)
    if stored then
        local entry = cjson.decode(stored)
        local field = tostring(entry["queue"]) .. ":" .. tostring(entry["item"])
        if redis.call("hincrby", KEYS[2], field, -1) <= 0 then
            redis.call("hdel", KEYS[2], field)
        end
        redis.call("hdel", KEYS[1], job_id)
    end
end
if #old > 0 then
    redis.call("zrem", KEYS[3], unpack(old))
end
for _, key in ipairs(KEYS) do
    if redis.call("exists", key) == 1 then
        redis.call("expire", key, retention)
    end
end
if created == 1 then
    return {1, ARGV[2]}
end
return {0, redis.call("hget", KEYS[1], ARGV[1])}
