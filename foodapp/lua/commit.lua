-- Write a group of job starts and finishes in one call (foodapp/commits.py): what several
-- worker threads had to write at the same moment, in one round trip instead of one each.
-- Each is start.lua's or finish.lua's work, unchanged, on its own keys and arguments.
--
-- jobs.composed("commit") puts transition.lua, start.lua and finish.lua before this as the
-- functions `transition`, `start` and `finish`.
--
-- KEYS: every write's keys, one write after the other
-- ARGV: for each write, one after the other: its kind ("start" or "finish"), how many keys
--       it has, how many arguments, then its arguments. Flat strings, not one JSON argument:
--       a cjson decode cost Redis more than the commands it carried, and a number it made
--       had to be turned back into a string by every command that took it.
-- Returns each write's reply, in order.
local replies = {}
local k, a, last = 1, 1, #ARGV
while a <= last do
    local kind, nkeys, nargs = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
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
return replies
