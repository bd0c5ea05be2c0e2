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

A paused queue (foodapp/queues.py) is honoured here: the fetch script takes nothing from a
paused queue (so an idle worker blocked on its wake list takes nothing either), a busy
consumer rereads the pause at most once a second, and messages it fetched but no worker
thread started go back to the head of the queue, in order (Pauses, PauseGate).
"""
import logging
import itertools
import threading
import time
from collections import defaultdict

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import _RedisConsumer
from dramatiq.common import compute_backoff, current_millis
from dramatiq.errors import ConnectionClosed
from dramatiq.message import Message
from dramatiq.middleware import Middleware, SkipMessage
from redis.exceptions import NoScriptError

from foodapp import jobs
from foodapp.durable import TooFewReplicas, hold_on, is_retryable
from foodapp.queues import PAUSED, decode_pause

log = logging.getLogger(__name__)

_fetch_order = itertools.count()


class FifoMessageProxy(MessageProxy):
    """A MessageProxy that sorts by fetch order."""

    def __init__(self, message, fetched=None):
        super().__init__(message)
        # A message a paused queue's gate handed back keeps its first number (Pauses).
        self._fetched = next(_fetch_order) if fetched is None else fetched
        # The message's fields as the proxy's own: MessageProxy reaches them through
        # __getattr__, which Python calls only after a failed lookup, and the hooks read
        # them about 35 times a job. (Message is frozen; options is the same dict.)
        self.__dict__.update(queue_name=message.queue_name, actor_name=message.actor_name, args=message.args,
                             kwargs=message.kwargs, options=message.options, message_id=message.message_id,
                             message_timestamp=message.message_timestamp)

    def __lt__(self, other):
        return self._fetched < getattr(other, "_fetched", float("inf"))

    def __eq__(self, other):
        # Dramatiq's work queue compares (priority, message) pairs: every comparison asked
        # whether two messages were equal, field by field, before asking which came first.
        # Two proxies are the same message handed out once: the same fetch number.
        if isinstance(other, FifoMessageProxy):
            return self._fetched == other._fetched
        return super().__eq__(other)

    __hash__ = None  # as MessageProxy's


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


#: How often (s) a consumer that is not fetching rereads whether its queue is paused.
PAUSE_READ_INTERVAL = 1.0
#: How long (s) a consumer waits before asking again whether it may fetch, when the master
#: has fewer replicas online than a fetch must reach (FifoConsumer._replicas).
NO_REPLICA_PAUSE = 0.25


class Pauses:
    """What this worker process knows of paused queues, shared by its consumers and its
    worker threads (PauseGate): one per broker (``pauses_of``).

    ``state``: queue -> {by, at} while paused, None when not, as the consumer last read
    it (in a fetch, or on its own at most once a second). ``handed``: ids of messages the
    consumer handed to the worker threads that no thread has started or handed back yet.
    ``returned``: (fetch number, Message) of messages a thread handed back because their
    queue is paused; the consumer gives them back to Redis, at the head of the queue, once
    no handed message is left undecided: then nothing older than them can still come back
    after them, and the queue keeps its order.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.state = {}
        self.gated = False
        self.handed = defaultdict(set)
        self.returned = defaultdict(list)

    def hand(self, queue_name, message_id):
        if self.gated:
            with self.lock:
                self.handed[queue_name].add(message_id)

    def admit(self, message):
        """True if ``message`` may start; else it is kept in ``returned`` (PauseGate)."""
        queue_name = message.queue_name
        with self.lock:
            self.handed[queue_name].discard(message.message_id)
            if self.state.get(queue_name) is None:
                return True
            self.returned[queue_name].append((message._fetched, message._message))
            return False

    def take_returned(self, queue_name):
        if not self.returned.get(queue_name):
            # Read without the lock (the consumer asks before every message it hands out):
            # one handed back just now is taken at the consumer's next turn, as it would be
            # had it come a moment later.
            return []
        with self.lock:
            returned, self.returned[queue_name] = self.returned[queue_name], []
            return returned

    def undecided(self, queue_name):
        with self.lock:
            return bool(self.handed[queue_name])


_pauses_lock = threading.Lock()


def _handed_back_not_skipped(record):
    """Drop Dramatiq's warning "Message ... was skipped." for a message the PauseGate handed
    back: it is not skipped, it waits in its queue (the consumer logs what it gave back)."""
    args = record.args if isinstance(record.args, tuple) else ()
    return not (args and getattr(args[0], "_foodapp_paused", False))


def pauses_of(broker):
    """The broker's Pauses (made on first use: the web app's broker never needs one)."""
    pauses = getattr(broker, "_foodapp_pauses", None)
    if pauses is None:
        with _pauses_lock:
            pauses = getattr(broker, "_foodapp_pauses", None)
            if pauses is None:
                pauses = broker._foodapp_pauses = Pauses()
    return pauses


class PauseGate(Middleware):
    """Stops a worker thread from starting a job whose queue was paused after its message
    was fetched: the message goes back to its consumer (then to the head of the queue), its
    status stays queued. Costs no Redis call: it reads what the consumer last read.

    Before JobStatus, so a job it stops is never marked running. Workers only
    (foodapp/worker.py): in-process test workers run without it and only stop fetching.
    """

    def before_worker_boot(self, broker, worker):
        pauses_of(broker).gated = True
        logging.getLogger("dramatiq.worker.WorkerThread").addFilter(_handed_back_not_skipped)

    def before_process_message(self, broker, message):
        if not pauses_of(broker).admit(message):
            message._foodapp_paused = True
            raise SkipMessage(f"queue {message.queue_name} is paused: job {message.message_id} goes back to it")


class FifoConsumer(_RedisConsumer):
    """Dramatiq's Redis consumer, yielding FifoMessageProxy objects, keeping Holdings."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Set whenever a worker thread is done with a message: room to prefetch another.
        self._acked = threading.Event()
        self._orphans_due = 0.0  # time.monotonic() of the next orphan check
        self._unconfirmed_logged = float("-inf")
        self._connection_lost = False
        self._delay_queue = self.queue_name.endswith(".DQ")
        self._pauses = pauses_of(self.broker)
        self._pause_due = 0.0  # time.monotonic() when the pause must be read again
        self._numbers = {}  # message id -> fetch number, of messages handed back by the gate
        self._fetch_script = self.broker.client.register_script(jobs.lua("fetch"))
        # The last fetch of this (not delayed) queue left it empty (fetch.lua says so).
        self._emptied = False

    def _wake_if_room(self):
        """A worker thread is done with a message: wake the consumer if it may fetch now,
        not at every ack (with prefetch 128 it fetches when 64 are free: once per 64 jobs)."""
        if self._room():
            self._acked.set()

    @property
    def wake_key(self):
        return f"{self.broker.namespace}:{self.queue_name}.wake"

    @property
    def _held(self):
        return self.broker.holdings.held(self.queue_name)

    def ack(self, message):
        rid = message.options["redis_message_id"]
        if getattr(message, "_foodapp_paused", False):
            # Handed back by the PauseGate: still ours (held, in our ack set) until the
            # consumer gives it back to the queue or, resumed, hands it out again.
            self.queued_message_ids.discard(message.message_id)
            self._wake_if_room()
            return
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
        self._wake_if_room()

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
            self._wake_if_room()

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
        self._wake_if_room()

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
        if self._delay_queue and self._connection_lost:
            # Dramatiq drops its in-memory delay queue when its consumer loses the
            # connection (only then: after any other error it keeps it); what it held is
            # ours no longer, and the next consumer's orphan check returns it.
            self._held.clear()
        super().close()

    def _fetch_command(self, count):
        """EVALSHA's arguments for a fetch of ``count`` messages: Dramatiq's own for a delay
        queue (never paused: due jobs move on to their queue, and wait there), else
        fetch.lua, which takes nothing from a paused queue."""
        if self._delay_queue:
            return self.broker.fetch_command(self.queue_name, count)
        broker, queue = self.broker, f"{self.broker.namespace}:{self.queue_name}"
        return (self._fetch_script.sha, 5, queue, f"{queue}.msgs", acks_key(broker, self.queue_name),
                f"{broker.namespace}:__heartbeats__", PAUSED,
                max(0, count), current_millis(), broker.broker_id, self.queue_name)

    def _load_fetch_script(self):
        """A new master has none of our scripts: load the fetch's; the next fetch uses it."""
        script = self.broker.scripts["dispatch"] if self._delay_queue else self._fetch_script
        self.broker.client.script_load(script.script)

    def _taken(self, reply):
        """The messages' data in a fetch's reply; fetch.lua's reply also says whether the
        queue is paused (its first element), which is noted (Pauses), and how many messages
        it left in the queue (none: the fetch emptied it, noted for __next__)."""
        if self._delay_queue:
            return reply
        self._note_pause(decode_pause(reply[0]) if reply[0] else None)
        if len(reply) < 2:
            return []  # paused: nothing taken
        self._emptied = reply[1] == 0
        return reply[2:]

    def _replicas(self):
        """How many replicas a fetch must reach; None when the master has fewer online
        (ReplicaPolicy.for_write): then nothing is fetched, for what it took could not be
        confirmed (``_confirmed``), and would only wait in our ack set for the orphan check.
        Waits a moment first, so that a consumer with nothing to fetch does not spin."""
        try:
            return self.broker.replicas.for_write()
        except TooFewReplicas as error:
            now = time.monotonic()
            if now >= self._unconfirmed_logged + 10:
                self._unconfirmed_logged = now
                log.warning("not fetching jobs of %s: %s", self.queue_name, error)
            time.sleep(NO_REPLICA_PAUSE)
            return None

    def _fetch(self, count):
        replicas = self._replicas()
        if replicas is None:
            return []
        if not replicas:
            if self._delay_queue:
                return self._hold(self.broker.do_fetch(self.queue_name, count))
            _, _, *keys_and_args = self._fetch_command(count)
            return self._hold(self._taken(self._fetch_script(keys=keys_and_args[:5], args=keys_and_args[5:])))
        with self.broker.client.pipeline(transaction=False) as pipe:
            pipe.evalsha(*self._fetch_command(count))
            pipe.execute_command("WAIT", replicas, self.broker.settings.enqueue_replica_timeout_ms)
            try:
                fetched, acknowledged = pipe.execute()
            except NoScriptError:
                self._load_fetch_script()
                return []
        return self._hold(self._confirmed(self._taken(fetched), acknowledged, replicas))

    def _wake_and_fetch(self, count):
        """Block until an enqueue wakes us (or the idle timeout), then fetch: one round trip.

        Redis runs a connection's commands in order, so the fetch pipelined after BLPOP runs
        the moment BLPOP returns, without another trip from here and back.
        """
        replicas = self._replicas()
        if replicas is None:
            return []
        with self.broker.client.pipeline(transaction=False) as pipe:
            pipe.blpop([self.wake_key], timeout=self._idle_block(replicas))
            pipe.evalsha(*self._fetch_command(count))
            if replicas:
                pipe.execute_command("WAIT", replicas, self.broker.settings.enqueue_replica_timeout_ms)
            try:
                _, fetched, *acknowledged = pipe.execute()
            except NoScriptError:
                self._load_fetch_script()
                return []
        fetched = self._taken(fetched)
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
        """The fetched messages to hand out, now held by this process (Holdings).

        One this process already holds is not handed out again: a sweep gave it back while
        it was in this worker's hands (its heartbeat silent for the timeout, as in a slow
        failover), and this worker fetched it anew. The fetch put it back in this worker's
        ack set, so start.lua would let both copies start; the copy already handed out runs
        (or was refused, and the orphan check gives this one back)."""
        held, messages = self._held, []
        for data in fetched:
            if not data:
                continue
            message = Message.decode(data)
            rid = message.options["redis_message_id"]
            if rid in held:
                log.warning("fetched job %s again while this worker still holds it (given back by a sweep while "
                            "this worker could not beat): not handing it out twice", message.message_id)
                continue
            held.add(rid)
            messages.append(message)
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

    def _paused(self):
        return self._pauses.state.get(self.queue_name) is not None

    def _note_pause(self, pause):
        """Note what Redis said of the queue's pause; say so once when it changes."""
        self._pause_due = time.monotonic() + PAUSE_READ_INTERVAL
        with self._pauses.lock:
            before = self._pauses.state.get(self.queue_name)
            self._pauses.state[self.queue_name] = pause
        if pause is not None and before is None:
            log.info("queue %s paused by %s: not taking jobs", self.queue_name, pause["by"])
        elif pause is None and before is not None:
            log.info("queue %s resumed", self.queue_name)

    def _read_pause(self):
        """Read the pause on its own: when this consumer has not fetched for a second (its
        threads are busy), at most once a second; never once per job."""
        self._note_pause(decode_pause(self.broker.client.hget(PAUSED, self.queue_name)))

    def _take_back_returned(self):
        """Messages the PauseGate handed back go before the ones not handed out yet, each
        with its first fetch number (so, resumed, they still run first)."""
        returned = self._pauses.take_returned(self.queue_name)
        if returned:
            for number, message in returned:
                self._numbers[message.message_id] = number
            self.message_cache = [message for _, message in returned] + self.message_cache
            self.message_cache.sort(key=lambda message: self._numbers.get(message.message_id, float("inf")))

    def _undecided(self):
        """Whether a message handed to the worker threads may still be handed back."""
        if not self._pauses.gated:
            return False
        with self._pauses.lock:
            handed = self._pauses.handed[self.queue_name]
            handed.intersection_update(self.queued_message_ids)  # acked or nacked some other way
            return bool(handed)

    def _wait_paused(self):
        """The queue is paused: hand out nothing. Give back what this consumer holds but no
        thread started, at the head of the queue and in order, once none of what it handed
        out may still come back (else that, older, would land behind it). Then wait on the
        wake list: the fetch behind the wait takes nothing while the queue stays paused, and
        the next jobs once it is resumed (resume pushes wake tokens)."""
        if self.message_cache and not self._undecided():
            ids = [message.options["redis_message_id"] for message in self.message_cache]
            given = _give_back(self.broker, self.queue_name, ids)
            self._held.difference_update(ids)
            self.message_cache = []
            self._numbers.clear()
            log.info("gave back %d job(s) of paused queue %s to its head, in order", given, self.queue_name)
        self._check_orphans()
        self.message_cache += self._wake_and_fetch(self.prefetch - self.outstanding_message_count)
        return None

    def __next__(self):
        try:
            while True:
                if not self._delay_queue:
                    self._take_back_returned()
                    if time.monotonic() >= self._pause_due:
                        self._read_pause()
                    if self._paused():
                        return self._wait_paused()

                if self.message_cache:
                    message = self.message_cache.pop(0)
                    self.misses = 0
                    self.queued_message_ids.add(message.message_id)
                    if not self._delay_queue:
                        self._pauses.hand(self.queue_name, message.message_id)
                    return FifoMessageProxy(message, self._numbers.pop(message.message_id, None))

                self._check_orphans()

                if not self._room():
                    # The worker threads are busy: wait until they are done with enough
                    # messages (acks or nacks) to fetch half a prefetch at once, not
                    # Dramatiq's sleep with a growing backoff, which leaves threads idle
                    # while the queue is full, nor a fetch per ack, which costs a Redis
                    # call per job. No longer than until the pause is due to be read again.
                    self._acked.clear()
                    if not self._room():
                        wait = self.timeout / 1000
                        if not self._delay_queue:
                            wait = min(wait, max(0.01, self._pause_due - time.monotonic()))
                        self._acked.wait(wait)
                    return None

                if self._delay_queue:
                    self.message_cache = self._fetch(self.prefetch - self.outstanding_message_count)
                    if self.message_cache:
                        continue
                    # Delayed messages are due by the clock: poll with Dramatiq's backoff.
                    self.misses, backoff_ms = compute_backoff(self.misses, max_backoff=self.timeout)
                    time.sleep(backoff_ms / 1000)
                    return None

                count = self.prefetch - self.outstanding_message_count
                if self._emptied:
                    # The last fetch left the queue empty. Whatever came since left a wake
                    # token (enqueue.lua, requeue.lua and jobaction.lua push one), so the BLPOP
                    # returns at once and the fetch behind it takes it: no direct fetch first,
                    # a round trip (and the GIL) taken from the job this consumer just handed
                    # out, as it starts.
                    self.message_cache = self._wake_and_fetch(count)
                    if not self.message_cache:
                        return None
                    continue
                self.message_cache = self._fetch(count)
                if not self.message_cache and not self._paused():
                    # The queue is empty: block until an enqueue wakes us (enqueue.lua pushes
                    # a token per job) or the idle timeout passes, instead of Dramatiq's
                    # sleep-and-poll, which makes a job wait up to a second for an idle worker.
                    self.message_cache = self._wake_and_fetch(count)
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
