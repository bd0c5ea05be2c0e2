"""The worker side of bench/pickup_stages.py: `dramatiq foodapp.worker bench.stage_actors`.

Notes the time of each stage of a job's pickup in this worker process (the consumer's
fetch, the consumer thread putting the message on Dramatiq's work queue, that thread
building its next blocking call, a worker thread taking the message, JobStatus's start
written) and has the `staged`
probe record them, as milliseconds since its enqueue, in the list ``bench:stages``. The
stages are noted by wrapping the methods that mark them: measurement only, never shipped.
"""
import json
import time

import dramatiq
from dramatiq.middleware import CurrentMessage
from dramatiq.worker import _ConsumerThread, _WorkerThread

from bench import probes
from foodapp import consumer, status

QUEUE = probes.QUEUE
_noted = {}


def _note(message_id, stage):
    _noted.setdefault(message_id, {})[stage] = time.time()


def _wrap(owner, name, before=None, after=None):
    original = getattr(owner, name)

    def wrapped(self, *args):
        if before:
            before(*args)
        result = original(self, *args)
        if after:
            after(result, *args)
        return result
    setattr(owner, name, wrapped)


def _fetched(messages, *_):
    for message in messages:
        _note(message.message_id, "fetched")


def _handed(message):
    _note(message.message_id, "put")
    _last_handed[0] = message.message_id


def _blocks(*_):
    if _last_handed[0] is not None:
        _note(_last_handed[0], "blocks")
        _last_handed[0] = None


_last_handed = [None]  # the message the consumer thread put on the work queue last
_wrap(_ConsumerThread, "handle_message", before=_handed)
_wrap(consumer.FifoConsumer, "_idle_block", before=_blocks)  # building its next blocking call
_wrap(consumer.FifoConsumer, "_wake_and_fetch", after=_fetched)
_wrap(consumer.FifoConsumer, "_fetch", after=_fetched)
_wrap(_WorkerThread, "process_message", before=lambda message: _note(message.message_id, "thread"))
_wrap(status.JobStatus, "before_process_message", before=lambda broker, message: _note(message.message_id, "before"),
      after=lambda _, broker, message: _note(message.message_id, "started"))


def staged(sent_at):
    now = time.time()
    noted = _noted.pop(CurrentMessage.get_current_message().message_id, {})
    stages = {stage: round((at - sent_at) * 1000, 3) for stage, at in noted.items()}
    stages["runs"] = round((now - sent_at) * 1000, 3)
    dramatiq.get_broker().client.rpush("bench:stages", json.dumps(stages))


def declare(broker):
    broker.declare_queue(QUEUE)
    dramatiq.Actor(staged, broker=broker, actor_name="staged", queue_name=QUEUE, priority=0, options={})


declare(dramatiq.get_broker())
