"""The recovery bench's slow job, declared on either broker the way bench/probes.py does it.

``slow`` records when it starts (time.time(), in a Redis list) and then sleeps, so a worker
can be killed in the middle of it and the bench can see when it starts again.
"""
import time

import dramatiq

QUEUE = "recovery"
#: A list of time.time() values, one per start of the slow job.
STARTS = "bench:recovery:starts"


def slow(seconds):
    dramatiq.get_broker().client.rpush(STARTS, f"{time.time():.6f}")
    time.sleep(seconds)


def declare(broker):
    broker.declare_queue(QUEUE)
    return dramatiq.Actor(slow, broker=broker, actor_name="slow", queue_name=QUEUE, priority=0, options={})
