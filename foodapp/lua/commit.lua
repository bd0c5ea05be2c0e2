-- Write a group of job starts and finishes in one call (foodapp/commits.py): what several
-- worker threads had to write at the same moment, in one round trip instead of one each.
-- Each is start.lua's or finish.lua's work, unchanged, on its own keys and arguments.
--
-- jobs.composed("commit") puts transition.lua, start.lua and finish.lua before this as the
-- functions `transition`, `start` and `finish`, and as locals the key prefixes foodapp/jobs.py
-- names (STATUS_PREFIX, STATS, MINUTE_PREFIX, DURATIONS_PREFIX) and SHARED, the strings in a
-- shared part (jobs.SHARED).
--
-- Two forms of write. "start" and "finish" carry their keys and arguments whole. "s" and
-- "f", the worker's hot path (jobs.Started and jobs.Done), carry only what is a job's own,
-- and the number of a shared part sent once at the head of the call (the worker's
-- identity, the queue's keys, the status ttl): the arguments start.lua and finish.lua take
-- are made here, the same as JobStore.change() makes them. Each string a call carries
-- costs hiredis its packing and Redis an object and a Lua string: a start and a done took
-- 62 of them, now 16 and their share of the shared parts (two per queue in a call).
--
-- KEYS: every "start" and "finish" write's keys, one write after the other
-- ARGV: how many shared parts, then each shared part (SHARED strings: status ttl, the
--       worker's ack set for the queue, the queue's messages hash ("" for none), queue name
--       ("" in a start's), worker id, worker name ("" in a done's), worker pid, and the
--       started event's JSON tail); then for each write, one after the other: its kind,
--       and for "start" and "finish", how many keys it has, how many arguments, then its
--       arguments; for "s", its shared part's number, redis message id, job id, started
--       at, retries, delivery token; for "f", its shared part's number, redis message id,
--       job id, finished at, run time (s), the run time's histogram bucket, the minute
--       (epoch minutes), result (JSON). Flat strings, not one JSON argument: a cjson decode
--       cost Redis more than the commands it carried, and a number it made had to be
--       turned back into a string by every command that took it.
-- Returns each write's reply, in order.
local replies = {}
local k, last = 1, #ARGV
local a = 2 + tonumber(ARGV[1]) * SHARED

-- The first ARGV index of shared part `number`.
local function shared(number)
    return 2 + (tonumber(number) - 1) * SHARED
end

while a <= last do
    local kind = ARGV[a]
    if kind == "s" then
        local s = shared(ARGV[a + 1])
        local rid, job_id, started_at, retries, delivery = ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
        local status = STATUS_PREFIX .. job_id
        local keys = {ARGV[s + 1], status, status .. ":events"}
        if ARGV[s + 2] ~= "" then
            keys[4] = ARGV[s + 2]
        end
        replies[#replies + 1] = start(keys, {
            rid, delivery, ARGV[s], "", "", '{"event":"started","at":"' .. started_at .. '"' .. ARGV[s + 7], "0",
            "state", "running", "started_at", started_at, "worker", ARGV[s + 4], "worker_name", ARGV[s + 5],
            "worker_pid", ARGV[s + 6], "retries", retries, "delivery", delivery})
        a = a + 7
    elseif kind == "f" then
        local s = shared(ARGV[a + 1])
        local rid, job_id, finished_at = ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
        local status, queue = STATUS_PREFIX .. job_id, ARGV[s + 3]
        local field, durations = queue .. ":done", DURATIONS_PREFIX .. queue
        replies[#replies + 1] = finish({ARGV[s + 1], ARGV[s + 2], status, status .. ":events"}, {
            rid, ARGV[s], "running", ARGV[s + 4], '{"event":"done","at":"' .. finished_at .. '"}', "5",
            STATS, field, "1", MINUTE_PREFIX .. ARGV[a + 7], field, "1",
            durations, ARGV[a + 6], "1", durations, "sum", ARGV[a + 5], durations, "count", "1",
            "state", "done", "finished_at", finished_at, "result", ARGV[a + 8]})
        a = a + 9
    else
        local nkeys, nargs = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
        local keys = {unpack(KEYS, k, k + nkeys - 1)}
        local args = {unpack(ARGV, a + 3, a + 2 + nargs)}
        if kind == "start" then
            replies[#replies + 1] = start(keys, args)
        elseif kind == "finish" then
            replies[#replies + 1] = finish(keys, args)
        else
            return redis.error_reply("commit.lua: unknown write " .. tostring(kind))
        end
        k = k + nkeys
        a = a + 3 + nargs
    end
end
return replies
