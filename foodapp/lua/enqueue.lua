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
-- KEYS: for each message: its queue list, queue messages hash, job status hash, job
--       events list; then the idempotency key, if any; then the batch key, if any.
-- ARGV: status ttl (s), message count, idempotency fingerprint ("" for none),
--       idempotency ttl (s), answer to remember, batch record ("" for none); then for each
--       message: redis message id, message data, event (json), status fields (a json
--       object of strings: four arguments per message, however many fields it has).
-- Returns {"stored", n} | {"replay", answer} | {"conflict", ""}
local ttl = ARGV[1]
local count = tonumber(ARGV[2])
local fingerprint = ARGV[3]

if fingerprint ~= "" then
    local key = KEYS[count * 4 + 1]
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

local stored = 0
for i = 0, count - 1 do
    local queue, messages, status, events = KEYS[i * 4 + 1], KEYS[i * 4 + 2], KEYS[i * 4 + 3], KEYS[i * 4 + 4]
    local a = 7 + i * 4
    local rid, data, event = ARGV[a], ARGV[a + 1], ARGV[a + 2]
    if redis.call("hsetnx", status, "stored:" .. rid, 1) == 1 then
        redis.call("hset", messages, rid, data)
        redis.call("rpush", queue, rid)
        if string.sub(queue, -3) ~= ".DQ" then
            -- Wake one idle consumer of this queue (see FifoConsumer): a hint, bounded.
            if redis.call("rpush", queue .. ".wake", 1) > 100 then
                redis.call("ltrim", queue .. ".wake", -100, -1)
            end
        end
        local fields = {}
        for name, value in pairs(cjson.decode(ARGV[a + 3])) do
            fields[#fields + 1] = name
            fields[#fields + 1] = value
        end
        redis.call("hset", status, unpack(fields))
        redis.call("expire", status, ttl)
        if redis.call("rpush", events, event) > 100 then
            redis.call("ltrim", events, -100, -1)
        end
        redis.call("expire", events, ttl)
        stored = stored + 1
    end
end
return {"stored", tostring(stored)}
