"""The actors the bench runs on either broker: a no-op, and a probe that records its delay."""
import time

import dramatiq

QUEUE = "bench"


def noop():
    return None


def probe(sent_at):
    """Record how long after its enqueue this job started."""
    dramatiq.get_broker().client.rpush("bench:latency", f"{time.time() - sent_at:.6f}")


def declare(broker):
    broker.declare_queue(QUEUE)
    for fn in (noop, probe):
        dramatiq.Actor(fn, broker=broker, actor_name=fn.__name__, queue_name=QUEUE, priority=0, options={})
