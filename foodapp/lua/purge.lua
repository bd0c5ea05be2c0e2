-- Purge one chunk of a queue: take up to `count` messages from the head of its list, drop
-- their data from the queue's messages hash, and mark each job cancelled (event "purged")
-- in its status record, through transition.lua (jobs.composed puts it before this as the
-- function `transition`), only from a state a waiting job can be in, so a record that
-- expired is not made again and a finished one is left alone.
--
-- foodapp/queues.py calls this in chunks, so a queue of 100,000 jobs never holds Redis in
-- one long script. The purge ends at `last`, the message that was last in the list when it
-- began: jobs enqueued during the purge stay.
--
-- KEYS: queue list, queue messages hash, job status key prefix ("foodapp:job:")
-- ARGV: count, last redis message id, status ttl (s), event (json), now (epoch s)
-- Returns {removed in this chunk, 1 when the purge is over (reached `last` or the list
-- is empty) else 0}
local count, last = tonumber(ARGV[1]), ARGV[2]
local removed = 0
for _ = 1, count do
    local rid = redis.call("lpop", KEYS[1])
    if not rid then
        return {removed, 1}
    end
    local data = redis.call("hget", KEYS[2], rid)
    redis.call("hdel", KEYS[2], rid)
    removed = removed + 1
    if data then
        local ok, message = pcall(cjson.decode, data)
        if ok and type(message) == "table" and message.message_id then
            local status = KEYS[3] .. message.message_id
            transition({status, status .. ":events"},
                       {ARGV[3], "scheduled,queued,running,retrying", "", ARGV[4], "0",
                        "state", "cancelled", "finished_at", ARGV[5]})
        end
    end
    if rid == last then
        return {removed, 1}
    end
end
return {removed, 0}
