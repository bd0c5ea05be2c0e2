-- Move a job's status record to a new state, only from the states given and only for the
-- worker given, so a late or stale writer never overwrites a newer state.
--
-- When it applies, it also adds to the counters the metrics read (stats hashes).
--
-- KEYS: job status hash, job events list
-- ARGV: status ttl (s), allowed current states ("a,b" or "" for any),
--       owning worker ("" for any), event (json), number of counter increments,
--       (hash, field, amount) for each increment, status field/value pairs...
if ARGV[2] ~= "" or ARGV[3] ~= "" then
    -- Both guards' fields in one read: each command costs a script more than its own work.
    local current = redis.call("hmget", KEYS[1], "state", "worker")
    local state = current[1]
    if ARGV[2] ~= "" and state ~= ARGV[2] then  -- one allowed state (a done: "running") needs no list
        local allowed = false
        for s in string.gmatch(ARGV[2], "[^,]+") do
            if s == state then
                allowed = true
            end
        end
        if not allowed then
            return 0
        end
    end
    if ARGV[3] ~= "" and current[2] ~= ARGV[3] then
        return 0
    end
end

local increments = tonumber(ARGV[5])
for i = 0, increments - 1 do
    local counter = ARGV[6 + i * 3]
    local amount = ARGV[8 + i * 3]
    local counted
    if string.find(amount, ".", 1, true) then
        redis.call("hincrbyfloat", counter, ARGV[7 + i * 3], amount)
    else
        counted = redis.call("hincrby", counter, ARGV[7 + i * 3], amount)
    end
    -- Per-minute counts: the last two hours. Set when a field is new (its count is this
    -- amount), which a new hash always is; not at every job: a minute's hash lives long
    -- after its minute, and an EXPIRE cost a done more than any increment but a float's.
    if string.find(counter, ":minute:", 1, true) and (counted == nil or counted == tonumber(amount)) then
        redis.call("expire", counter, 7200)
    end
end
redis.call("hset", KEYS[1], unpack(ARGV, 6 + increments * 3))
redis.call("expire", KEYS[1], ARGV[1])
if redis.call("rpush", KEYS[2], ARGV[4]) > 100 then
    redis.call("ltrim", KEYS[2], -100, -1)
end
redis.call("expire", KEYS[2], ARGV[1])
return 1
