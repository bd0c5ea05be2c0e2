-- Acknowledge a job and record that it is done, in one atomic step and one round trip:
-- the message leaves the worker's ack set and the queue's messages hash (as Dramatiq's
-- ack does), and the job's status moves to "done" (transition.lua, with its checks and
-- counters). A worker cannot die between the two: a job is never acked without its
-- status saying done, nor marked done while it could still be run again by the sweep.
--
-- commit.lua runs this as its function `finish`, with transition.lua as `transition`
-- (jobs.composed), grouped with other threads' starts and finishes.
--
-- KEYS: worker's ack set for the queue, queue messages hash, job status hash, job events list
-- ARGV: redis message id, then transition.lua's ARGV
if redis.call("srem", KEYS[1], ARGV[1]) > 0 then
    redis.call("hdel", KEYS[2], ARGV[1])
end
return transition({KEYS[3], KEYS[4]}, {unpack(ARGV, 2)})
