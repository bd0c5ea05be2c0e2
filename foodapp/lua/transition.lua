-- Move a job's status record to a new state, only from the states given and only for the
-- worker given, so a late or stale writer never overwrites a newer state.
--
-- KEYS: job status hash, job events list
-- ARGV: status ttl (s), allowed current states ("a,b" or "" for any),
--       owning worker ("" for any), event (json), status field/value pairs...
if ARGV[2] ~= "" then
    local state = redis.call("hget", KEYS[1], "state")
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
if ARGV[3] ~= "" and redis.call("hget", KEYS[1], "worker") ~= ARGV[3] then
    return 0
end

local fields = {}
for i = 5, #ARGV do
    fields[#fields + 1] = ARGV[i]
end
redis.call("hset", KEYS[1], unpack(fields))
redis.call("expire", KEYS[1], ARGV[1])
redis.call("rpush", KEYS[2], ARGV[4])
redis.call("ltrim", KEYS[2], -100, -1)
redis.call("expire", KEYS[2], ARGV[1])
return 1
