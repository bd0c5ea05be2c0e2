"""A Redis consumer that keeps each queue first in, first out.

Dramatiq puts fetched messages in a PriorityQueue keyed by actor priority, and its
MessageProxy compares every message as "less than" any other, so among prefetched messages
of equal priority the order is the heap's, not the queue's. Numbering each message as it
is fetched restores first-in, first-out. And messages fetched but never started go back to
the head of their queue, not the tail, when a worker stops.

The consumer also keeps track of what this process holds (Holdings), so that a message
Redis believes it holds but it does not (after a failover, or a fetch whose reply was
lost) is given back instead of waiting for this worker to die. Each consumer checks its own
queue, between two of its fetches: then no fetch of its is in flight, so every message Redis
lists for it is one it holds, one just acknowledged (the give-back script skips those: they
have left the ack set), or an orphan.
"""
import logging
import itertools
import threading
import time
from collections import defaultdict

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import _RedisConsumer
from dramatiq.common import compute_backoff
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message
from redis.exceptions import NoScriptError

from foodapp.durable import hold_on, is_retryable

log = logging.getLogger(__name__)

_fetch_order = itertools.count()


class FifoMessageProxy(MessageProxy):
    """A MessageProxy that sorts by fetch order."""

    def __init__(self, message):
        super().__init__(message)
        self._fetched = next(_fetch_order)

    def __lt__(self, other):
        return self._fetched < getattr(other, "_fetched", float("inf"))


class Holdings:
    """The messages this worker process holds, per queue: fetched, not yet acked or given back.

    Redis keeps the same thing in the worker's ack sets. The two can disagree after a
    failover (the new master got the fetch but not the ack) or a lost reply to a fetch;
    ``give_back_orphans`` returns what Redis thinks we hold but we do not.
    """

    def __init__(self):
        self._held = defaultdict(set)

    def held(self, queue_name):
        return self._held[queue_name]


class FifoConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer, yielding FifoMessageProxy objects, keeping Holdings."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Set whenever a worker thread is done with a message: room to prefetch another.
        self._acked = threading.Event()
        self._orphans_due = 0.0  # time.monotonic() of the next orphan check
        self._unconfirmed_logged = float("-inf")
        self._connection_lost = False

    @property
    def wake_key(self):
        return f"{self.broker.namespace}:{self.queue_name}.wake"

    @property
    def _held(self):
        return self.broker.holdings.held(self.queue_name)

    def ack(self, message):
        rid = message.options["redis_message_id"]
        if getattr(message, "_foodapp_released", False):
            # Given back before it started here (JobStatus): nothing of ours to acknowledge.
            self._let_go(message, rid)
            return
        change = getattr(message, "_foodapp_done", None)
        if change is not None:
            self._finish(message, rid, change)
            return
        try:
            # Its retry, delay or dead letter is stored: held on to through a failover,
            # the message stays in our hands (and in our ack set) until Redis takes its
            # ack, or the job would run twice; Dramatiq's own retry only covers
            # connection errors, and only every 5 s.
            hold_on(f"acknowledging job {message.message_id}",
                    lambda: self.broker.do_ack(self.queue_name, rid))
        finally:
            self._let_go(message, rid)

    def _let_go(self, message, rid):
        """The message is no longer this worker's: room to fetch another."""
        self.queued_message_ids.discard(message.message_id)
        self._held.discard(rid)
        self._acked.set()

    def _finish(self, message, rid, change):
        """The job succeeded: ack it and record it done in one write (see JobStatus), once,
        grouped with other threads' writes (commits.py). The worker thread goes on at once;
        the message stays held (and in our ack set) until Redis has answered.

        Not held on to: a done written to another master than the job's own writes (a
        failover between the two) would mark a job done whose effects were lost with the old
        master. When Redis does not answer, the message is let go instead, still in our ack
        set wherever Redis kept it: if this master took the done, nothing is left to give
        back; if not (or a failover lost it), the orphan check gives it back and the job runs
        again, as a job in flight at a failure may.
        """
        def then(error):
            if error is None or is_retryable(error):
                if error is not None:
                    log.warning("job %s ran, but Redis did not confirm it done (%s); if Redis lost its work, "
                                "it runs again", message.message_id, error)
                self._let_go(message, rid)
                return
            # Not a failover: kept in our ack set and held (the orphan check leaves it), so it
            # is not run again over and over; the sweep gives it back once this worker stops.
            log.error("job %s ran, but Redis refused its done (%s); it runs again once this worker stops",
                      message.message_id, error)
            self.queued_message_ids.discard(message.message_id)
            self._acked.set()

        self.broker.jobs.finish(acks_key(self.broker, self.queue_name),
                                f"{self.broker.namespace}:{self.queue_name}.msgs", rid, change, then=then)

    def nack(self, message):
        # Moving the message to the dead letters, held on to like an ack.
        rid = message.options["redis_message_id"]
        try:
            hold_on(f"dead-lettering job {message.message_id}", lambda: self.broker.do_nack(self.queue_name, rid))
        finally:
            self.queued_message_ids.discard(message.message_id)
        self._held.discard(rid)
        self._acked.set()

    def requeue(self, messages):
        messages = sorted(messages, key=lambda message: getattr(message, "_fetched", 0))
        if not messages:
            return
        ids = [message.options["redis_message_id"] for message in messages]
        try:
            _give_back(self.broker, self.queue_name, ids)
        except redis.ConnectionError as error:
            # Still in our ack set: the next consumer's orphan check gives them back.
            raise ConnectionClosed(error) from None
        finally:
            self._held.difference_update(ids)

    def close(self):
        # Fetched but never handed to the worker: this consumer object goes, and its cache
        # with it. Let go of them, so the next consumer's orphan check gives them back.
        self._held.difference_update(message.options["redis_message_id"] for message in self.message_cache)
        self.message_cache = []
        if self.queue_name.endswith(".DQ") and self._connection_lost:
            # Dramatiq drops its in-memory delay queue when its consumer loses the
            # connection (only then: after any other error it keeps it); what it held is
            # ours no longer, and the next consumer's orphan check returns it.
            self._held.clear()
        super().close()

    def _fetch(self, count):
        replicas = self.broker.replicas.required()
        if not replicas:
            return self._hold(self.broker.do_fetch(self.queue_name, count))
        with self.broker.client.pipeline(transaction=False) as pipe:
            pipe.evalsha(*self.broker.fetch_command(self.queue_name, count))
            pipe.execute_command("WAIT", replicas, self.broker.settings.enqueue_replica_timeout_ms)
            try:
                fetched, acknowledged = pipe.execute()
            except NoScriptError:
                # A new master: load Dramatiq's script; the next fetch uses it.
                self.broker.client.script_load(self.broker.scripts["dispatch"].script)
                return []
        return self._hold(self._confirmed(fetched, acknowledged, replicas))

    def _wake_and_fetch(self, count):
        """Block until an enqueue wakes us (or the idle timeout), then fetch: one round trip.

        Redis runs a connection's commands in order, so the fetch pipelined after BLPOP runs
        the moment BLPOP returns, without another trip from here and back.
        """
        replicas = self.broker.replicas.required()
        with self.broker.client.pipeline(transaction=False) as pipe:
            pipe.blpop([self.wake_key], timeout=self._idle_block(replicas))
            pipe.evalsha(*self.broker.fetch_command(self.queue_name, count))
            if replicas:
                pipe.execute_command("WAIT", replicas, self.broker.settings.enqueue_replica_timeout_ms)
            try:
                _, fetched, *acknowledged = pipe.execute()
            except NoScriptError:
                return []  # a new master: the next plain fetch loads the script
        if replicas:
            fetched = self._confirmed(fetched, acknowledged[0], replicas)
        return self._hold(fetched)

    def _idle_block(self, replicas):
        """How long an idle wait blocks (s): Dramatiq's worker timeout, but short enough
        that the block, and the WAIT pipelined behind it, end well within the connection's
        socket timeout (else every idle wait ends in a socket timeout and a restart)."""
        settings = self.broker.settings
        room = settings.redis_socket_timeout * 0.75 - (settings.enqueue_replica_timeout_ms / 1000 if replicas else 0)
        return round(max(0.05, min(self.timeout / 1000, room)), 3)

    def _confirmed(self, fetched, acknowledged, replicas):
        """The fetched messages, if enough replicas know that we took them; else none.

        A master cut off from its replica (a partition) would otherwise hand out jobs that
        the promoted replica still has queued, and each would run on both sides. Not handed
        out, they stay in our ack set here, not held: the orphan check gives them back, on
        a master that was only slow; on a cut-off one, its data is thrown away on rejoining.
        """
        if fetched and acknowledged < replicas:
            now = time.monotonic()
            if now >= self._unconfirmed_logged + 10:
                self._unconfirmed_logged = now
                log.warning("fetched %d job(s) of %s, but %d of %d replica(s) acknowledged it: not running them "
                            "(this master may be cut off from its replica); they go back to their queue",
                            len([data for data in fetched if data]), self.queue_name, acknowledged, replicas)
            return []
        return fetched

    def _hold(self, fetched):
        messages = [Message.decode(data) for data in fetched if data]
        self._held.update(message.options["redis_message_id"] for message in messages)
        return messages

    def _check_orphans(self):
        now = time.monotonic()
        if now < self._orphans_due:
            return
        self._orphans_due = now + self.broker.settings.workers_heartbeat_interval
        given_back = give_back_orphans(self.broker, self.queue_name)
        if given_back:
            log.warning("gave back %d job(s) of %s that Redis listed as held by this worker but it was not",
                        given_back, self.queue_name)

    def _room(self):
        """Room to fetch: half the prefetch or more free (at least one)."""
        return self.prefetch - self.outstanding_message_count >= max(1, self.prefetch // 2)

    def __next__(self):
        try:
            while True:
                if self.message_cache:
                    message = self.message_cache.pop(0)
                    self.misses = 0
                    self.queued_message_ids.add(message.message_id)
                    return FifoMessageProxy(message)

                self._check_orphans()

                if not self._room():
                    # The worker threads are busy: wait until they are done with enough
                    # messages (acks or nacks) to fetch half a prefetch at once, not
                    # Dramatiq's sleep with a growing backoff, which leaves threads idle
                    # while the queue is full, nor a fetch per ack, which costs a Redis
                    # call per job.
                    self._acked.clear()
                    if not self._room():
                        self._acked.wait(self.timeout / 1000)
                    return None

                if self.queue_name.endswith(".DQ"):
                    self.message_cache = self._fetch(self.prefetch - self.outstanding_message_count)
                    if self.message_cache:
                        continue
                    # Delayed messages are due by the clock: poll with Dramatiq's backoff.
                    self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
                    time.sleep(backoff_ms / 1000)
                    return None

                self.message_cache = self._fetch(self.prefetch - self.outstanding_message_count)
                if not self.message_cache:
                    # The queue is empty: block until an enqueue wakes us (enqueue.lua pushes
                    # a token per job) or the idle timeout passes, instead of Dramatiq's
                    # sleep-and-poll, which makes a job wait up to a second for an idle worker.
                    self.message_cache = self._wake_and_fetch(self.prefetch - self.outstanding_message_count)
                    if not self.message_cache:
                        return None
        except redis.ConnectionError as error:
            self._connection_lost = True
            raise ConnectionClosed(error) from None


def acks_key(broker, queue_name):
    """This worker's ack set for the queue: what Redis says it holds (Dramatiq's key)."""
    return f"{broker.namespace}:__acks__.{broker.broker_id}.{queue_name}"


def _give_back(broker, queue_name, ids):
    queue = f"{broker.namespace}:{queue_name}"
    return broker.requeue_script(
        keys=[acks_key(broker, queue_name), queue, f"{queue}.msgs"],
        args=ids,
    )


def give_back_orphans(broker, queue_name):
    """Return to the queue the messages Redis says this worker holds from it but it does not.

    Only the queue's own consumer thread may call this, between its fetches (see above).
    """
    acks = broker.client.smembers(acks_key(broker, queue_name))
    held = broker.holdings.held(queue_name)
    orphans = sorted(rid.decode() for rid in acks if rid.decode() not in held)
    return _give_back(broker, queue_name, orphans) if orphans else 0
