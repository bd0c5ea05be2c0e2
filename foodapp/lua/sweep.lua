-- Give back the jobs of workers whose heartbeat stopped, deterministically.
--
-- For every worker whose last heartbeat is older than the timeout, each message it had
-- fetched but not acknowledged goes back to the head of its queue, oldest first, so FIFO
-- order holds. A message the dead worker was running (its status says running on that
-- worker) counts as a crash; at max_crashes it goes to the dead-letter queue instead of
-- killing yet another worker. Dead letters older than their TTL are dropped.
--
-- A worker is dead when it has not beaten for the timeout while Redis could take its
-- beats. Every sweep writes down when it ran; a sweep that finds the previous one older than
-- the gap (Redis was down, or failing over, and nobody could beat) starts the clock again:
-- until a whole timeout has passed since, only the workers that said they stopped (score 0)
-- are swept. Else a failover longer than the timeout would make every worker look dead,
-- and their running jobs would run twice.
--
-- A queue given jobs back gets a wake token per job, as an enqueue gives: wake.lua, put
-- before this as the function `wake` by jobs.composed("sweep", "wake").
--
-- KEYS: dramatiq namespace, job status key prefix, worker info key prefix, sweep clock hash
-- ARGV: now (ms), heartbeat timeout (ms), max crashes, status ttl (s),
--       dead-letter ttl (ms), gap (ms), queue names...
-- Returns {requeued, dead_lettered, workers_swept}
local namespace = KEYS[1]
local status_prefix = KEYS[2]
local worker_prefix = KEYS[3]
local clock = KEYS[4]
local now = tonumber(ARGV[1])
local timeout = tonumber(ARGV[2])
local max_crashes = tonumber(ARGV[3])
local status_ttl = ARGV[4]
local dead_message_ttl = tonumber(ARGV[5])
local gap = tonumber(ARGV[6])
local first_queue = 7
local heartbeats = namespace .. ":__heartbeats__"

-- The first sweep on a Redis writes the clock down too: with nothing written, every sweep
-- would read "now" for the last one and never see a gap.
local recorded = redis.call("hget", clock, "last")
local last_sweep = tonumber(recorded or now)
local resumed = tonumber(redis.call("hget", clock, "resumed") or 0)
if now - last_sweep > gap then
    resumed = now
    redis.call("hset", clock, "resumed", now)
end
if not recorded or now > last_sweep then
    redis.call("hset", clock, "last", now)
end

local requeued, dead_lettered, swept = 0, 0, 0

local function event(status_key, fields)
    local events_key = status_key .. ":events"
    redis.call("rpush", events_key, cjson.encode(fields))
    redis.call("ltrim", events_key, -100, -1)
    redis.call("expire", events_key, status_ttl)
    redis.call("expire", status_key, status_ttl)
end

local function give_back(worker, queue_name, canonical)
    local acks = namespace .. ":__acks__." .. worker .. "." .. queue_name
    local queue = namespace .. ":" .. queue_name
    local messages = queue .. ".msgs"
    local ids = redis.call("smembers", acks)
    local held, woken = {}, 0
    for _, rid in ipairs(ids) do
        local data = redis.call("hget", messages, rid)
        if data then
            local message = cjson.decode(data)
            held[#held + 1] = {rid = rid, data = data, message = message}
        end
    end
    -- Oldest first at the head of the queue: push the newest first.
    table.sort(held, function(a, b)
        return a.message.message_timestamp > b.message.message_timestamp
    end)
    for _, item in ipairs(held) do
        local status_key = status_prefix .. item.message.message_id
        local running_here = queue_name == canonical
            and redis.call("hget", status_key, "state") == "running"
            and redis.call("hget", status_key, "worker") == worker
        local crashes = 0
        if running_here then
            crashes = redis.call("hincrby", status_key, "crashes", 1)
            redis.call("hincrbyfloat", "foodapp:stats", canonical .. ":crashed", 1)
        end
        local at = string.format("%.3f", now / 1000)
        if running_here and crashes >= max_crashes then
            local xqueue = namespace .. ":" .. canonical .. ".XQ"
            redis.call("zadd", xqueue, now, item.rid)
            redis.call("hset", xqueue .. ".msgs", item.rid, item.data)
            redis.call("hdel", messages, item.rid)
            local reason = "worker crashed " .. crashes .. " times"
            redis.call("hset", status_key, "state", "dead", "error", reason, "finished_at", at)
            event(status_key, {event = "dead", at = at, worker = worker, reason = reason})
            redis.call("hincrbyfloat", "foodapp:stats", canonical .. ":dead", 1)
            dead_lettered = dead_lettered + 1
        else
            redis.call("lpush", queue, item.rid)
            if running_here then
                redis.call("hset", status_key, "state", "queued")
                event(status_key, {event = "requeued", at = at, worker = worker,
                                   reason = "worker stopped answering while running the job"})
            end
            requeued = requeued + 1
            woken = woken + 1
        end
    end
    redis.call("del", acks)
    -- A wake token per job given back (at most 100), as enqueue.lua pushes: an idle worker
    -- blocked on the wake list takes them at once, not after its idle wait.
    if woken > 0 and queue_name == canonical then
        wake({queue .. ".wake"}, {woken})
    end
end

local silent_since = now - timeout
if now - resumed < timeout then
    silent_since = 0
end
local dead_workers = redis.call("zrangebyscore", heartbeats, 0, silent_since)
for _, worker in ipairs(dead_workers) do
    for i = first_queue, #ARGV do
        give_back(worker, ARGV[i], ARGV[i])
        give_back(worker, ARGV[i] .. ".DQ", ARGV[i])
    end
    redis.call("zrem", heartbeats, worker)
    redis.call("del", worker_prefix .. worker)
    swept = swept + 1
end

for i = first_queue, #ARGV do
    local xqueue = namespace .. ":" .. ARGV[i] .. ".XQ"
    local expired = redis.call("zrangebyscore", xqueue, 0, now - dead_message_ttl, "LIMIT", 0, 1000)
    if #expired > 0 then
        redis.call("zrem", xqueue, unpack(expired))
        redis.call("hdel", xqueue .. ".msgs", unpack(expired))
    end
end

return {requeued, dead_lettered, swept}
