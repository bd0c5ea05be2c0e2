-- Store jobs and their status records in one atomic step: each message, its place at the
-- tail of its queue, and the status record the API reads. A batch is stored whole or not
-- at all. Running it again for the same redis message ids (a retried enqueue whose first
-- answer was lost, or that no replica confirmed) stores nothing twice, even when a worker
-- has taken and finished the first copy meanwhile: each message id is written down in its
-- job's status record ("stored:<id>"), which lives as long as the job's status.
--
-- With an idempotency key, the first request stores the jobs and the answer it will give;
-- a later one with the same key gets that answer back (and stores nothing), or, if it is
-- not the same request (another fingerprint), is refused.
--
-- A batch (POST /menu) also stores its record, the list of its jobs, with the same ttl.
--
-- A new job also goes into the console's search index (foodapp/search.py), here, in the
-- same call: the sorted sets of recent job ids by enqueue time (all, per actor, per item),
-- each expiring with the statuses, and trimmed to the status ttl and to a most count in the
-- calls the web process marks ("trim" in a job's options: one call in INDEX_TRIM_EVERY, and
-- its first; foodapp/broker.py). Trimming costs two commands per key, the most of the index.
-- A job's index score is its enqueue time in microseconds, raised if need be to just above
-- the newest entry, so that jobs stored in the same microsecond (a menu) or by web hosts
-- whose clocks differ still list in the order Redis stored them.
--
-- A message stored in a delay queue (".DQ") writes its redis message id down in the job's
-- status ("delayed", and "stored:<id>" = "d"). When it comes due, the worker holding it
-- moves it on to its queue (Dramatiq's handle_delayed_messages): that move ("due", with
-- the delayed message's id) is stored only while the job is still waiting for that very
-- message (scheduled or retrying, and "delayed" is still its id); else it is dropped, and
-- the worker acks the delayed copy: a job cancelled, or already run by "run now", never
-- runs again from it. A due move of any other message (one requeued from the dead letters
-- keeps an eta, so the worker delays it too; one stored before "d" existed) is stored
-- unless the job was cancelled; so is any due move once the status expired.
--
-- KEYS: for each message: its queue list, queue messages hash, job status hash, job
--       events list, the index of all jobs, its actor's index, its item's index; then the
--       idempotency key, if any; then the batch key, if any.
-- ARGV: status ttl (s), message count, idempotency fingerprint ("" for none),
--       idempotency ttl (s), answer to remember, batch record ("" for none); then for each
--       message: redis message id, message data, event (json), the id of the delayed
--       message it moves on ("" for none), the enqueue time to index it under ("" not to
--       index it), the index's most count, whether it has an item index ("1" or ""),
--       whether this call trims the index keys it writes ("1" or ""), how many status field
--       arguments follow, then its status fields as name, value pairs, "job_id" first.
--       Flat, not JSON: decoding JSON was a tenth of what a single order cost Redis.
-- Returns {"stored", n} | {"replay", answer} | {"conflict", ""}
local PER_KEY = 7
local ttl = ARGV[1]
local count = tonumber(ARGV[2])
local fingerprint = ARGV[3]

if fingerprint ~= "" then
    local key = KEYS[count * PER_KEY + 1]
    local existing = redis.call("get", key)
    if existing then
        local cut = string.find(existing, "\n", 1, true)
        if string.sub(existing, 1, cut - 1) == fingerprint then
            return {"replay", string.sub(existing, cut + 1)}
        end
        return {"conflict", ""}
    end
    redis.call("set", key, fingerprint .. "\n" .. ARGV[5], "EX", ARGV[4])
end

if ARGV[6] ~= "" then
    redis.call("set", KEYS[#KEYS], ARGV[6], "EX", ttl)
end

-- Whether a delayed message coming due (its id: `due`) may still move on to its queue.
local function still_waiting_for(status, due)
    local state = redis.call("hget", status, "state")
    if not state then
        return true  -- expired (a delay longer than the status ttl): nothing says no
    end
    if state == "cancelled" then
        return false
    end
    if redis.call("hget", status, "stored:" .. due) ~= "d" then
        return true  -- not a delay queue's message: no "run now" can have moved it
    end
    if state ~= "scheduled" and state ~= "retrying" then
        return false  -- cancelled, or already queued, running or over ("run now", a copy)
    end
    local delayed = redis.call("hget", status, "delayed")
    return not delayed or delayed == due
end

-- The index keys this call added to, each trimmed (by age and count) and given its ttl once,
-- after the last job: a menu of 100 items trims each key once, not 100 times.
local indexed, index_max, trim = {}, 0, false
local function index(key, job_id, score)
    redis.call("zadd", key, score, job_id)
    indexed[key] = true
end

-- How many jobs this call queued per queue: one wake token each, pushed once per queue.
local woken = {}

-- The score a new job is indexed under: ``given``, or just above the newest one indexed.
local newest = nil
local function index_score(all, given)
    if newest == nil then
        local top = redis.call("zrange", all, -1, -1, "WITHSCORES")
        newest = top[2] and tonumber(top[2]) or 0
    end
    newest = math.max(tonumber(given), newest + 0.000001)
    return string.format("%.6f", newest)
end

local stored = 0
local a = 7
for i = 0, count - 1 do
    local k = i * PER_KEY
    local queue, messages, status, events = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
    local rid, data, event, due = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
    local index_at, item, trim_here = ARGV[a + 4], ARGV[a + 6] ~= "", ARGV[a + 7] ~= ""
    local first_field, last_field = a + 9, a + 8 + tonumber(ARGV[a + 8])
    local job_id = ARGV[first_field + 1]
    if index_at ~= "" then
        index_max = tonumber(ARGV[a + 5])
    end
    a = last_field + 1
    local moving = true
    if due ~= "" then
        moving = still_waiting_for(status, due)
    end
    if moving and redis.call("hsetnx", status, "stored:" .. rid, 1) == 1 then
        redis.call("hset", messages, rid, data)
        redis.call("rpush", queue, rid)
        if string.sub(queue, -3) ~= ".DQ" then
            woken[queue] = (woken[queue] or 0) + 1
        end
        redis.call("hset", status, unpack(ARGV, first_field, last_field))
        if string.sub(queue, -3) == ".DQ" then
            redis.call("hset", status, "delayed", rid, "stored:" .. rid, "d")
        elseif due ~= "" then
            redis.call("hdel", status, "delayed")
        end
        redis.call("expire", status, ttl)
        if index_at ~= "" then
            local score = index_score(KEYS[k + 5], index_at)
            trim = trim or trim_here
            index(KEYS[k + 5], job_id, score)
            index(KEYS[k + 6], job_id, score)
            if item then
                index(KEYS[k + 7], job_id, score)
            end
        end
        if redis.call("rpush", events, event) > 100 then
            redis.call("ltrim", events, -100, -1)
        end
        redis.call("expire", events, ttl)
        stored = stored + 1
    end
end

-- Wake one idle consumer per job queued (see FifoConsumer): a hint, bounded to 100 tokens
-- (wake.lua, put before this as the function `wake` by jobs.composed("enqueue", "wake")).
for queue, jobs in pairs(woken) do
    wake({queue .. ".wake"}, {jobs})
end
if newest ~= nil then
    local oldest = string.format("(%.6f", newest - tonumber(ttl))
    for key in pairs(indexed) do
        if trim then
            redis.call("zremrangebyscore", key, "-inf", oldest)
            redis.call("zremrangebyrank", key, 0, -(index_max + 1))
        end
        redis.call("expire", key, ttl)
    end
end
return {"stored", tostring(stored)}
