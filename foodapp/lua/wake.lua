-- Wake idle consumers of a queue (foodapp/consumer.py): one token per job just put in it, at
-- most 100, pushed at once; the list is kept to its last 100. A hint: a consumer blocked on
-- the list (BLPOP) takes a token and fetches.
--
-- enqueue.lua and sweep.lua run this as their function `wake` (jobs.composed).
--
-- KEYS: the queue's wake list
-- ARGV: how many jobs were put in the queue
local tokens = {}
for n = 1, math.min(tonumber(ARGV[1]), 100) do
    tokens[n] = 1
end
if redis.call("rpush", KEYS[1], unpack(tokens)) > 100 then
    redis.call("ltrim", KEYS[1], -100, -1)
end
