"""The consumption ledger: one entry per job, what was eaten or drunk, by whom and when."""
import json
import os
import time

from dramatiq import get_broker
from dramatiq.middleware import CurrentMessage

from foodapp.jobs import encode, lua

LEDGER = "foodapp:ledger"
TOTALS = "foodapp:ledger:totals"

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
        keys=[LEDGER, TOTALS], args=[message.message_id, encode(entry), f"{queue}:{item}"],
    )
    return {**json.loads(stored), "recorded_now": bool(created)}


def prepare():
    """Take the configured preparation time: the stand-in for real work."""
    seconds = get_broker().settings.kitchen_preparation_seconds
    if seconds > 0:
        time.sleep(seconds)
