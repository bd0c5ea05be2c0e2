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

from foodapp.jobs import encode, lua

LEDGER = "foodapp:ledger"
TOTALS = "foodapp:ledger:totals"
INDEX = "foodapp:ledger:index"
#: Most entries one record trims (the rest wait for the next record): bounds a script's work.
TRIM_BATCH = 100


_scripts = {}


def _record_script(client):
    if client not in _scripts:
        _scripts[client] = client.register_script(lua("ledger"))
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
