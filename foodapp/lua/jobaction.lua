-- An operator's action on one job (foodapp/search.py): cancel it, run it now, or retry it,
-- checked and made in one atomic step, so it never races a worker starting the job, a
-- delayed copy coming due, or another operator.
--
-- cancel:  a job that is scheduled, queued or retrying becomes "cancelled". Its message
--          stays where it is and is dropped when it comes up: start.lua refuses to start a
--          cancelled job (and acks it); a delayed copy finds the job no longer waiting for
--          it (enqueue.lua) and is acked without moving on.
-- run-now: a job that is scheduled or retrying is put at the tail of its queue now, as a
--          new message (its data given, without an eta), if its delayed message is still
--          the one given; "delayed" is cleared, so that copy, when it comes due in the
--          worker holding it, is dropped: the job runs once.
-- retry:   a dead or failed job's message leaves the queue's dead letters (given: sorted
--          set and messages hash) and goes to the tail of its queue as a new message.
--
-- KEYS: job status hash, job events list; run-now and retry: queue list, queue messages
--       hash; retry: dead-letter sorted set, its messages hash
-- ARGV: action, status ttl (s), event (json), now (epoch s); run-now and retry: the
--       message's current redis message id, its new id, its new data
-- Returns {1, "queued" or "cancelled"} when made, else {0, the job's state, "" if none}.
local action, ttl, event, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local status, events = KEYS[1], KEYS[2]
local state = redis.call("hget", status, "state")
if not state then
    return {0, ""}
end

local allowed = {cancel = {scheduled = true, queued = true, retrying = true},
                 ["run-now"] = {scheduled = true, retrying = true},
                 retry = {dead = true, failed = true}}
if not allowed[action] then
    return redis.error_reply("jobaction.lua: unknown action " .. tostring(action))
end
if not allowed[action][state] then
    return {0, state}
end

local new_state = "queued"
if action == "cancel" then
    new_state = "cancelled"
    redis.call("hset", status, "state", "cancelled", "finished_at", now)
    redis.call("hdel", status, "delayed")
else
    local current, rid, data = ARGV[5], ARGV[6], ARGV[7]
    if action == "run-now" then
        if redis.call("hget", status, "delayed") ~= current then
            return {0, state}  -- its delayed message is not the one we read: try again
        end
    elseif redis.call("zrem", KEYS[5], current) == 0 then
        return {0, state}  -- no longer a dead letter (requeued or deleted meanwhile)
    else
        redis.call("hdel", KEYS[6], current)
    end
    redis.call("hset", KEYS[4], rid, data)
    redis.call("rpush", KEYS[3], rid)
    if redis.call("rpush", KEYS[3] .. ".wake", 1) > 100 then
        redis.call("ltrim", KEYS[3] .. ".wake", -100, -1)
    end
    redis.call("hset", status, "state", "queued", "stored:" .. rid, 1)
    redis.call("hdel", status, "delayed", "finished_at", "eta")
    if action == "retry" then
        redis.call("hset", status, "retries", 0, "crashes", 0)
    end
end
redis.call("expire", status, ttl)
if redis.call("rpush", events, event) > 100 then
    redis.call("ltrim", events, -100, -1)
end
redis.call("expire", events, ttl)
return {1, new_state}
