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
local taken = {"", 0}
local left = nil  -- unknown until an LPOP finds the queue empty
for _ = 1, tonumber(ARGV[1]) do
    local rid = redis.call("lpop", KEYS[1])
    if not rid then
        left = 0
        break
    end
    redis.call("sadd", KEYS[3], rid)
    taken[#taken + 1] = redis.call("hget", KEYS[2], rid)
end
taken[2] = left or redis.call("llen", KEYS[1])
return taken
