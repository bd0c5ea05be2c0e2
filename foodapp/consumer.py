"""A Redis consumer that keeps each queue first in, first out.

Dramatiq puts fetched messages in a PriorityQueue keyed by actor priority, and its
MessageProxy compares every message as "less than" any other, so among prefetched messages
of equal priority the order is the heap's, not the queue's. Numbering each message as it
is fetched restores first-in, first-out. And messages fetched but never started go back to
the head of their queue, not the tail, when a worker stops.
"""
import itertools
import time

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import _RedisConsumer
from dramatiq.common import compute_backoff
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message

_fetch_order = itertools.count()


class FifoMessageProxy(MessageProxy):
    """A MessageProxy that sorts by fetch order."""

    def __init__(self, message):
        super().__init__(message)
        self._fetched = next(_fetch_order)

    def __lt__(self, other):
        return self._fetched < getattr(other, "_fetched", float("inf"))


class FifoConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer, yielding FifoMessageProxy objects."""

    def requeue(self, messages):
        messages = sorted(messages, key=lambda message: getattr(message, "_fetched", 0))
        if not messages:
            return
        broker = self.broker
        queue = f"{broker.namespace}:{self.queue_name}"
        broker.requeue_script(
            keys=[f"{broker.namespace}:__acks__.{broker.broker_id}.{self.queue_name}", queue, f"{queue}.msgs"],
            args=[message.options["redis_message_id"] for message in messages],
        )

    def __next__(self):
        try:
            while True:
                if self.message_cache:
                    data = self.message_cache.pop(0)
                    if data is None:
                        # The message was deleted (from the dashboard, say) after it was
                        # fetched: its id came back without a body.
                        continue
                    self.misses = 0
                    message = Message.decode(data)
                    self.queued_message_ids.add(message.message_id)
                    return FifoMessageProxy(message)

                if self.outstanding_message_count < self.prefetch:
                    self.message_cache = self.broker.do_fetch(
                        self.queue_name, self.prefetch - self.outstanding_message_count,
                    )
                if not self.message_cache:
                    # Nothing to do: poll again after a backoff that grows up to the idle
                    # timeout, as Dramatiq does.
                    self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
                    time.sleep(backoff_ms / 1000)
                    return None
        except redis.ConnectionError as error:
            raise ConnectionClosed(error) from None
