-- Start a job: mark it running, only while the message is still this worker's.
--
-- The message must be in the worker's ack set: if the sweep (the worker looked dead) or the
-- orphan check gave it back meanwhile, another worker may be running it, so this one must
-- not (-1). This is what fences a worker that was cut off from Redis for a while: the jobs
-- it fetched before are no longer its own once they have been given back.
--
-- Writing the same start again (a retry of this call, whose first answer was lost, or not
-- confirmed by a replica) changes nothing: the delivery token of this start is kept in the
-- status record.
--
-- commit.lua runs this as its function `start`, with transition.lua as `transition`
-- (jobs.composed), grouped with other threads' starts and finishes.
--
-- A job an operator cancelled (foodapp/search.py) never starts: its message is acknowledged
-- here, in the same step (it leaves the ack set and, given KEYS[4], the messages hash), and
-- the worker skips it (-2). The check and the start are one step, so a cancel either comes
-- first (the job never runs) or finds the job running (and is refused).
--
-- KEYS: worker's ack set for the queue, job status hash, job events list, and the queue's
--       messages hash (optional)
-- ARGV: redis message id, delivery token, then transition.lua's ARGV (whose fields set
--       "delivery" to the token)
-- Returns 1 when the job may run, -1 when it is no longer this worker's, -2 when it was
-- cancelled (and its message is acknowledged).
if redis.call("sismember", KEYS[1], ARGV[1]) == 0 then
    return -1
end
local current = redis.call("hmget", KEYS[2], "state", "delivery")
if current[1] == "cancelled" then
    redis.call("srem", KEYS[1], ARGV[1])
    if KEYS[4] then
        redis.call("hdel", KEYS[4], ARGV[1])
    end
    return -2
end
if current[2] == ARGV[2] then
    return 1
end
transition({KEYS[2], KEYS[3]}, {unpack(ARGV, 3)})
return 1
