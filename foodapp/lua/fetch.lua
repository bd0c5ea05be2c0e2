-- Take up to `count` messages from the head of a queue for one worker, unless the queue is
-- paused (foodapp/queues.py): then take none and answer who paused it.
--
-- Dramatiq's own fetch (its dispatch.lua "fetch") does the same minus the pause check:
-- it beats the worker's heartbeat, moves each message id from the queue list into the
-- worker's ack set, and answers the messages' data. Checking the pause here, in the fetch
-- itself, costs workers no extra round trip per job, and no fetch can slip in between a
-- pause and a worker noticing it: an idle worker's fetch, pipelined behind its BLPOP on
-- the wake list, takes nothing either once the queue is paused.
--
-- KEYS: queue list, queue messages hash, the worker's ack set for the queue,
--       the heartbeats sorted set, the paused-queues hash
-- ARGV: count, now (ms), worker id, queue name
-- Returns {pause} where pause is the paused hash's value (JSON {by, at}) when the queue is
-- paused, else {"", left, data...}: how many messages are left in the queue (0: this fetch
-- emptied it, and the consumer waits on the wake list next instead of fetching again), then
-- the data of each message taken (false for one whose data is missing, as Dramatiq's HMGET
-- answers).
redis.call("zadd", KEYS[4], ARGV[2], ARGV[3])
local pause = redis.call("hget", KEYS[5], ARGV[4])
if pause then
    return {pause}
end
-- The same few commands for any count (in slices of 1000, within Lua's unpack limit): each
-- command a script runs costs Redis more than the command's own work
-- (tests/test_redis_work.py).
local count = tonumber(ARGV[1])
local rids = count > 0 and redis.call("lpop", KEYS[1], count)
if not rids then
    return {"", count > 0 and 0 or redis.call("llen", KEYS[1])}
end
local taken = {"", 0}
for first = 1, #rids, 1000 do
    local last = math.min(first + 999, #rids)
    redis.call("sadd", KEYS[3], unpack(rids, first, last))
    local data = redis.call("hmget", KEYS[2], unpack(rids, first, last))
    for i = 1, #data do
        taken[#taken + 1] = data[i]
    end
end
-- Fewer than asked for: the queue is empty now.
taken[2] = #rids < count and 0 or redis.call("llen", KEYS[1])
return taken
