-- Hand back messages a stopping worker fetched but never started, at the head of their
-- queue and in their original order (Dramatiq's own requeue puts them at the tail).
--
-- KEYS: the worker's ack set for the queue, queue list, queue messages hash
-- ARGV: redis message ids, oldest first
local requeued = 0
for i = #ARGV, 1, -1 do
    if redis.call("srem", KEYS[1], ARGV[i]) > 0 and redis.call("hexists", KEYS[3], ARGV[i]) == 1 then
        redis.call("lpush", KEYS[2], ARGV[i])
        requeued = requeued + 1
    end
end
if requeued > 0 then
    redis.call("rpush", KEYS[2] .. ".wake", 1)
    redis.call("ltrim", KEYS[2] .. ".wake", -100, -1)
end
return requeued
