-- Several requests' enqueues in one call (foodapp/enqueues.py): what web threads had to store
-- at the same moment, in one round trip (and one WAIT) instead of one each. Each store is
-- enqueue.lua's work, unchanged, on its own keys and arguments, in the order the requests
-- arrived; each gets its own reply (stored, replay or conflict).
--
-- enqueues.script() puts enqueue.lua before this as the function `enqueue`.
--
-- KEYS: every store's keys, one store after the other
-- ARGV[1]: JSON, for each store: [how many keys, how many arguments] it has; then every
--          store's arguments, one store after the other
-- Returns each store's reply, in order.
local replies = {}
local k, a = 1, 2
for _, sizes in ipairs(cjson.decode(ARGV[1])) do
    local nkeys, nargs = sizes[1], sizes[2]
    replies[#replies + 1] = enqueue({unpack(KEYS, k, k + nkeys - 1)}, {unpack(ARGV, a, a + nargs - 1)})
    k = k + nkeys
    a = a + nargs
end
return replies
