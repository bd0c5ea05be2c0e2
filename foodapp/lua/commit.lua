-- Write a group of job starts and finishes in one call (foodapp/commits.py): what several
-- worker threads had to write at the same moment, in one round trip instead of one each.
-- Each is start.lua's or finish.lua's work, unchanged, on its own keys and arguments.
--
-- jobs.composed("commit") puts transition.lua, start.lua and finish.lua before this as the
-- functions `transition`, `start` and `finish`.
--
-- KEYS: every write's keys, one write after the other
-- ARGV[1]: JSON, for each write: [its kind ("start" or "finish"), how many keys it has, its
--          arguments]. One argument for the group, not one per field: redis-py spends far
--          more packing many small arguments than json does encoding them.
-- Returns each write's reply, in order.
local replies = {}
local k = 1
for _, write in ipairs(cjson.decode(ARGV[1])) do
    local kind, nkeys, args = write[1], write[2], write[3]
    local keys = {unpack(KEYS, k, k + nkeys - 1)}
    if kind == "start" then
        replies[#replies + 1] = start(keys, args)
    elseif kind == "finish" then
        replies[#replies + 1] = finish(keys, args)
    else
        return redis.error_reply("commit.lua: unknown write " .. tostring(kind))
    end
    k = k + nkeys
end
return replies
