-- Store a job and its status in one step: the message, its place at the tail of the queue,
-- and the status record the API reads. Running it twice for the same redis message id
-- (a retried enqueue whose first answer was lost) stores the job once.
--
-- KEYS: queue list, queue messages hash, job status hash, job events list
-- ARGV: redis message id, message data, status ttl (s), event (json), status field/value pairs...
if redis.call("hexists", KEYS[2], ARGV[1]) == 1 then
    return 0
end
redis.call("hset", KEYS[2], ARGV[1], ARGV[2])
redis.call("rpush", KEYS[1], ARGV[1])

local fields = {}
for i = 5, #ARGV do
    fields[#fields + 1] = ARGV[i]
end
redis.call("hset", KEYS[3], unpack(fields))
redis.call("expire", KEYS[3], ARGV[3])
redis.call("rpush", KEYS[4], ARGV[4])
redis.call("ltrim", KEYS[4], -100, -1)
redis.call("expire", KEYS[4], ARGV[3])
return 1
