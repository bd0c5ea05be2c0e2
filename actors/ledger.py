"""The consumption ledger: one entry per job, what was eaten or drunk, by whom and when.

Keys (all three expire ``ledger.retention_seconds`` after the last entry was recorded):

- ``foodapp:ledger``: hash, job id -> entry (JSON: job_id, item, queue, worker, at);
- ``foodapp:ledger:totals``: hash, "<queue>:<item>" -> how many entries of the ledger
  consumed it (the totals of exactly the entries the ledger holds: a field whose count
  falls to 0 is removed);
- ``foodapp:ledger:index``: sorted set, job id scored by the Redis time it was recorded.

Retention: every record also trims up to ``TRIM_BATCH`` entries recorded more than
``ledger.retention_seconds`` ago (oldest first), taking each out of the totals. Each record
adds one entry and can remove many, so the ledger holds the orders of about the last
retention period, and its size is bounded by the order rate times the retention. With no
order at all for a retention period, the keys expire whole. A job run again (after a crash)
within the retention period records nothing; the drills run their orders within minutes.
"""
import json
import os
import time

from dramatiq import get_broker
from dramatiq.middleware import CurrentMessage

from foodapp.jobs import encode

LEDGER = "foodapp:ledger"
TOTALS = "foodapp:ledger:totals"
INDEX = "foodapp:ledger:index"
#: Most entries one record trims (the rest wait for the next record): bounds a script's work.
TRIM_BATCH = 100

#: KEYS: ledger, totals, index. ARGV: job id, entry (JSON), totals field, retention
#: seconds, trim batch. Returns {1, entry} when recorded now, {0, earlier entry} otherwise.
RECORD = """
local time = redis.call("time")
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local retention = tonumber(ARGV[4])
local created = redis.call("hsetnx", KEYS[1], ARGV[1], ARGV[2])
if created == 1 then
    redis.call("hincrby", KEYS[2], ARGV[3], 1)
    redis.call("zadd", KEYS[3], now, ARGV[1])
end
local old = redis.call("zrangebyscore", KEYS[3], "-inf", now - retention, "LIMIT", 0, tonumber(ARGV[5]))
for _, job_id in ipairs(old) do
    local stored = redis.call("hget", KEYS[1], job_id)
    if stored then
        local entry = cjson.decode(stored)
        local field = tostring(entry["queue"]) .. ":" .. tostring(entry["item"])
        if redis.call("hincrby", KEYS[2], field, -1) <= 0 then
            redis.call("hdel", KEYS[2], field)
        end
        redis.call("hdel", KEYS[1], job_id)
    end
end
if #old > 0 then
    redis.call("zrem", KEYS[3], unpack(old))
end
for _, key in ipairs(KEYS) do
    if redis.call("exists", key) == 1 then
        redis.call("expire", key, retention)
    end
end
if created == 1 then
    return {1, ARGV[2]}
end
return {0, redis.call("hget", KEYS[1], ARGV[1])}
"""

_scripts = {}


def _record_script(client):
    if client not in _scripts:
        _scripts[client] = client.register_script(RECORD)
    return _scripts[client]


def record(queue, item):
    """Record that the current job consumed ``item``; a re-run of the job records nothing."""
    broker = get_broker()
    message = CurrentMessage.get_current_message()
    entry = {
        "job_id": message.message_id,
        "item": item,
        "queue": queue,
        "worker": broker.worker_name,
        "worker_pid": os.getpid(),
        "at": f"{time.time():.3f}",
    }
    created, stored = _record_script(broker.client)(
        keys=[LEDGER, TOTALS, INDEX],
        args=[message.message_id, encode(entry), f"{queue}:{item}",
              broker.settings.ledger_retention_seconds, TRIM_BATCH],
    )
    return {**json.loads(stored), "recorded_now": bool(created)}


def prepare():
    """Take the configured preparation time: the stand-in for real work."""
    seconds = get_broker().settings.kitchen_preparation_seconds
    if seconds > 0:
        time.sleep(seconds)
