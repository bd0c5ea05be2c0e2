"""The one Dramatiq broker setup shared by the web app and the workers.

``configure(settings)`` builds the Redis client (a plain URL, or Sentinel so a failover is
followed without a restart), the middleware, and the broker; sets it as Dramatiq's global
broker; and declares the actors and their queues on it. The web app and the workers both
call it, so they can never disagree about where Redis is or how jobs are stored.
"""
import itertools
import json
import logging
import os
import socket
import time
import uuid

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis, dq_name
from dramatiq.message import Message
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Middleware,
    MiddlewareError,
    ShutdownNotifications,
    TimeLimit,
)
from redis.sentinel import MasterNotFoundError, Sentinel

from foodapp import jobs, search
from foodapp.connection import ThreadConnections
from foodapp.consumer import FifoConsumer, Holdings
from foodapp.durable import (HoldOn, NotReplicated, Retries, TooFewReplicas, hold_on, is_retryable, pauses,
                             replicated)
from foodapp.heartbeat import Heartbeat
from foodapp.replicas import ReplicaPolicy
from foodapp.status import JobStatus

log = logging.getLogger(__name__)


class EnqueueUnavailable(Exception):
    """Redis did not take the job in time (down, no master, or not replicated in time).

    ``maybe_stored`` False: nothing was stored; the client may send again after
    ``retry_after`` seconds. True: the outcome is unknown (a master stored it but no replica
    acknowledged it, or a reply was lost): the job may run, and sending it again without the
    same Idempotency-Key could make a second one. ``replayed``, if not None, is the answer
    (JSON) of the earlier request with the same Idempotency-Key that the master holds.
    """

    def __init__(self, reason, retry_after, maybe_stored=False, replayed=None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.maybe_stored = maybe_stored
        self.replayed = replayed


class Replay(Exception):
    """The idempotency key was used before, for the same request: here is its answer."""

    def __init__(self, answer):
        super().__init__(answer)
        self.answer = answer


class IdempotencyConflict(Exception):
    """The idempotency key was used before, for a different request."""

    def __init__(self, key):
        super().__init__(key)
        self.key = key


def _refused(error):
    """Whether ``error`` proves that the enqueue script did not run: the connection was
    never made, or the server refused the write. Any other error (a lost reply, a missing
    replica acknowledgement) leaves the outcome unknown."""
    if isinstance(error, (MasterNotFoundError, redis.ReadOnlyError, TooFewReplicas)):
        return True
    if isinstance(error, redis.ResponseError):
        return True  # a retryable refusal: NOREPLICAS, LOADING, MASTERDOWN, OOM...
    if isinstance(error, (redis.ConnectionError, redis.TimeoutError)) and not isinstance(error, NotReplicated):
        return "connecting" in str(error)  # redis-py: "Error 111 connecting to...", "Timeout connecting..."
    return False


def make_client(settings):
    """A Redis client for the configured master: from Sentinel when sentinels are set."""
    options = dict(
        username=settings.redis_username or None,
        password=settings.redis_password,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_socket_timeout,
        socket_keepalive=True,
        health_check_interval=30,
    )
    if settings.redis_sentinels:
        sentinel = Sentinel(
            list(settings.redis_sentinels),
            sentinel_kwargs=dict(
                password=settings.redis_sentinel_password,
                socket_timeout=settings.redis_socket_timeout,
                socket_connect_timeout=settings.redis_socket_timeout,
            ),
            db=settings.redis_db,
            **options,
        )
        client = sentinel.master_for(settings.redis_master_name)
        return client
    if settings.redis_url.startswith("unix:"):
        options.pop("socket_keepalive")  # a TCP option: a Unix socket connection refuses it
    return redis.Redis.from_url(settings.redis_url, **options)


def describe(settings):
    """Where Redis is, for messages to people (never the password)."""
    if settings.redis_sentinels:
        hosts = " ".join(f"{host}:{port}" for host, port in settings.redis_sentinels)
        return f"master {settings.redis_master_name!r} from sentinels {hosts}"
    return settings.redis_url.split("@")[-1]


class FoodBroker(RedisBroker):
    """Dramatiq's RedisBroker, made to keep every job it accepts.

    - An enqueue stores the message and its status record in one Lua script, then waits
      (``WAIT``, on the same connection) for ``enqueue.replicas`` replicas to have it; it is
      retried for at most ``enqueue.retry_seconds`` through a failover, and otherwise fails
      with ``EnqueueUnavailable``, never with the job half stored.
    - Consumers hand messages to worker threads in the order they were fetched (FIFO).
    - Dramatiq's random 1-in-1000 maintenance is off: the Heartbeat middleware sweeps dead
      workers' jobs back deterministically instead.
    """

    def __init__(self, settings, client, middleware):
        super().__init__(
            client=client,
            middleware=middleware,
            namespace=settings.redis_namespace,
            heartbeat_timeout=int(settings.workers_heartbeat_timeout * 1000),
            dead_message_ttl=settings.jobs_dead_letter_ttl * 1000,
            maintenance_chance=0,
        )
        self.settings = settings
        self.jobs = jobs.JobStore(client, settings.jobs_status_ttl)
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self._enqueue = client.register_script(jobs.composed("enqueue", "wake"))
        self._connections = ThreadConnections(client)  # each thread's own, for its orders
        self._index_writes = itertools.count()  # this process's enqueue calls: which ones trim the index
        self.requeue_script = client.register_script(jobs.lua("requeue"))
        self.holdings = Holdings()
        self.replicas = ReplicaPolicy(settings, client)
        #: True in a worker process (durable.HoldOn): a write is tried until Redis takes
        #: it, never given up after enqueue.retry_seconds (see foodapp/durable.py).
        self.holds_on = False

    @property
    def consumer_class(self):
        return FifoConsumer

    # Dramatiq calls every middleware's hook for each signal of each job, most of them
    # Middleware's own do-nothing methods: about ninety calls a job with ours. These call
    # only the hooks a middleware defines, in the same order, with the same error handling.

    def add_middleware(self, middleware, **where):
        self._hooks_of = {}
        super().add_middleware(middleware, **where)

    def _hooks(self, signal):
        hooks = self._hooks_of.get(signal)
        if hooks is None:
            hooks = self._hooks_of[signal] = [
                getattr(middleware, signal) for middleware in self.middleware
                if getattr(type(middleware), signal, None) is not getattr(Middleware, signal, None)]
        return hooks

    def emit_before(self, signal, *args, **kwargs):
        for hook in self._hooks("before_" + signal):
            try:
                hook(self, *args, **kwargs)
            except MiddlewareError:
                raise
            except Exception:
                self.logger.critical("Unexpected failure in before_%s of %r.", signal, hook.__self__, exc_info=True)

    def emit_after(self, signal, *args, **kwargs):
        for hook in reversed(self._hooks("after_" + signal)):
            try:
                hook(self, *args, **kwargs)
            except Exception:
                self.logger.critical("Unexpected failure in after_%s of %r.", signal, hook.__self__, exc_info=True)

    def fetch_command(self, queue_name, count):
        """EVALSHA's arguments for Dramatiq's fetch of ``count`` messages, for a pipeline.

        The same arguments as ``do_fetch`` (RedisBroker._dispatch) gives its script.
        """
        return (self.scripts["dispatch"].sha, 1, self.namespace, "fetch", current_millis(), queue_name,
                self.broker_id, self.heartbeat_timeout, self.dead_message_ttl, 0, self._max_unpack_size(), count)

    def enqueue(self, message, *, delay=None):
        return self.enqueue_many([(message, delay)])[0]

    def enqueue_many(self, orders, idempotency=None, batch_id=None):
        """Store ``(message, delay)`` pairs in one round trip, all or none.

        ``batch_id``, if given, also stores the batch's record (its job ids) for
        GET /api/batches/<batch_id>.

        ``idempotency`` is ``(key, fingerprint, answer, ttl)``: the first call with ``key``
        stores the jobs and ``answer`` (kept ``ttl`` seconds); a later one with the same fingerprint raises Replay with
        that answer, with another fingerprint IdempotencyConflict, and stores nothing.
        Returns the messages as stored (each with its own redis message id).
        """
        prepared = []
        for message, delay in orders:
            # The id it was stored under before, if any (a delayed message coming due, say).
            redelivered = message.options.get("redis_message_id") or False
            options = {**message.options, "redis_message_id": new_redis_message_id()}
            queue_name = message.queue_name
            if delay is not None:
                queue_name = dq_name(queue_name)
                options["eta"] = current_millis() + delay
            # Message.copy's new message, without dataclasses.replace's field-by-field
            # introspection (about 3 µs an order).
            message = Message(queue_name=queue_name, actor_name=message.actor_name, args=message.args,
                              kwargs=message.kwargs, options=options, message_id=message.message_id,
                              message_timestamp=message.message_timestamp)
            prepared.append((message, delay, redelivered))

        for message, delay, _ in prepared:
            self.emit_before("enqueue", message, delay)
        trim = next(self._index_writes) % INDEX_TRIM_EVERY == 0
        keys, args = [], []
        for message, delay, redelivered in prepared:
            message_keys, message_args = self._record(message, delay, redelivered, trim)
            keys += message_keys
            args += message_args
        fingerprint, answer, batch, idempotency_ttl = "", "", "", 0
        if idempotency:
            key, fingerprint, answer, idempotency_ttl = idempotency
            keys.append(f"foodapp:idempotency:{key}")
        if batch_id:
            keys.append(jobs.batch_key(batch_id))
            batch = jobs.encode({"batch_id": batch_id, "job_ids": [m.message_id for m, _, _ in prepared],
                                 "created_at": jobs.now()})
        head = [self.settings.jobs_status_ttl, len(prepared), fingerprint, idempotency_ttl, answer, batch]
        outcome, detail = self._store(keys, head + args, prepared)
        if outcome == b"replay":
            raise Replay(detail.decode())
        if outcome == b"conflict":
            raise IdempotencyConflict(idempotency[0])
        for message, delay, _ in prepared:
            self.emit_after("enqueue", message, delay)
        return [message for message, _, _ in prepared]

    def _record(self, message, delay, redelivered, trim=True):
        """The keys and arguments enqueue.lua takes for one message.

        ``redelivered``: the redis message id it was stored under before (or False). A new
        job goes into the console's search index (foodapp/search.py), whose keys this call
        trims if ``trim``; a due message moves on
        only if its job still waits for that delayed copy (enqueue.lua: never after a cancel
        or a "run now")."""
        retries = message.options.get("retries", 0)
        if delay is not None:
            state = event_name = "retrying" if retries else "scheduled"
        elif redelivered:
            # Dramatiq's worker moves a due message from the delay queue (no eta left), or
            # someone requeues it from the dead letters (the dashboard keeps an eta).
            state, event_name = "queued", "requeued" if "eta" in message.options else "due"
        else:
            state = event_name = "queued"
        at = jobs.now()
        # enqueue.lua's status fields as name, value pairs, the job id first.
        fields = ["job_id", message.message_id, "state", state, "queue", message.queue_name.removesuffix(".DQ"),
                  "actor", message.actor_name, "args", jobs.encode(message.args), "retries", str(retries)]
        if message.kwargs:
            fields += ["kwargs", jobs.encode(message.kwargs)]
        if not redelivered:
            fields += ["enqueued_at", at]
        # The event's JSON written out: its values are a word and numbers, nothing to escape.
        if delay is not None:
            eta = f"{message.options['eta'] / 1000:.3f}"
            fields += ["eta", eta]
            event = f'{{"event":"{event_name}","at":"{at}","eta":"{eta}"}}'
        else:
            event = f'{{"event":"{event_name}","at":"{at}"}}'
        queue_key = f"{self.namespace}:{message.queue_name}"
        keys = [queue_key, f"{queue_key}.msgs", jobs.status_key(message.message_id), jobs.events_key(message.message_id)]
        item = search.item_of(message.args)
        keys += search.index_keys(message.actor_name, item)
        due = redelivered if redelivered and event_name == "due" else ""
        index_at = "" if redelivered else f"{time.time():.6f}"
        return keys, [message.options["redis_message_id"], encode_message(message), event, due, index_at,
                      self.settings.ops_index_max_jobs, "1" if item is not None else "", "1" if trim else "",
                      len(fields), *fields]

    def _store(self, keys, args, prepared):
        attempts = itertools.count()

        def attempt():
            if next(attempts):
                # Tried before: the master may be a new one. Load our script first (a
                # promoted replica has none), and ask the Sentinels how many replicas it
                # has, so neither costs this attempt a whole replica WAIT timeout.
                self._enqueue.sha = self.client.script_load(self._enqueue.script)
                self.replicas.refresh()
            return self._store_once(keys, args)

        if self.holds_on:
            what = "storing job " + ", ".join(message.message_id for message, _, _ in prepared[:3]) + (
                f" and {len(prepared) - 3} more" if len(prepared) > 3 else "")
            return hold_on(what, attempt)
        deadline = time.monotonic() + self.settings.enqueue_retry_seconds
        waits = pauses()
        maybe_stored, replayed = False, None
        while True:
            try:
                return attempt()
            except redis.RedisError as error:
                if not is_retryable(error):
                    raise
                # Sticky: once an attempt may have stored the job, no later refusal unstores it.
                maybe_stored = maybe_stored or not _refused(error)
                if isinstance(error, NotReplicated) and error.reply and error.reply[0] == b"replay":
                    replayed = error.reply[1].decode()
                pause = next(waits)
                if time.monotonic() + pause > deadline:
                    raise EnqueueUnavailable(
                        f"Redis ({describe(self.settings)}) did not take the job: {error}",
                        self.settings.enqueue_retry_after_seconds, maybe_stored, replayed,
                    ) from error
                log.warning("enqueue failed (%s); trying again", error)
                time.sleep(pause)

    def _store_once(self, keys, args):
        return replicated(self._connections.own, self._enqueue, keys, args, self.replicas.for_write(),
                          self.settings.enqueue_replica_timeout_ms, "the job")


#: One enqueue call in this many (and a process's first) trims the search index keys it
#: writes, by age and count: two commands a key, the most of what the index cost Redis per
#: order. So a key is trimmed in about one write in 64, and holds about that many jobs more
#: than ops.index_max_jobs, and entries of expired jobs (which a search skips), until then.
INDEX_TRIM_EVERY = 64


class _RedisMessageIds:
    """Ids for stored messages, unique across processes and restarts without a uuid4 each:
    a random prefix per process (made again in a forked child) and a counter. Dramatiq's
    own is a uuid4 string; nothing reads its form (the dashboard uses it as an opaque id)."""

    def __init__(self):
        self._new_prefix()
        os.register_at_fork(after_in_child=self._new_prefix)

    def _new_prefix(self):
        self._prefix = uuid.uuid4().hex + "-"
        self._count = itertools.count()

    def __call__(self):
        return f"{self._prefix}{next(self._count):x}"


new_redis_message_id = _RedisMessageIds()


#: Dramatiq's JSONEncoder writes json.dumps(data, separators=(",", ":")): this is the same
#: encoder, built once instead of once per message.
_message_json = json.JSONEncoder(separators=(",", ":"))


def encode_message(message):
    """``message.encode()``'s bytes, with less Python when Dramatiq's encoder is its JSON one."""
    if type(dramatiq.get_encoder()) is not dramatiq.JSONEncoder:
        return message.encode()
    return _message_json.encode({
        "queue_name": message.queue_name, "actor_name": message.actor_name, "args": message.args,
        "kwargs": message.kwargs, "options": message.options, "message_id": message.message_id,
        "message_timestamp": message.message_timestamp,
    }).encode("utf-8")


class Pipelines(dramatiq.middleware.Pipelines):
    """Dramatiq's Pipelines, run only for a job that has a next step (``pipe_target``): for any
    other it does nothing, but imports Dramatiq's Message first, at every job (an import
    statement run in a function), a few percent of a worker's Python time per no-op job."""

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if message.options.get("pipe_target") is not None:
            super().after_process_message(broker, message, result=result, exception=exception)


def make_middleware(settings):
    """Dramatiq's middleware minus Prometheus (metrics live in the web app), plus ours."""
    return [
        AgeLimit(),
        TimeLimit(time_limit=settings.jobs_time_limit_ms),
        ShutdownNotifications(),
        Callbacks(),
        Pipelines(),
        # Dramatiq runs "after" hooks last-to-first: JobStatus sees what Retries decided.
        JobStatus(),
        Retries(
            max_retries=settings.jobs_max_retries,
            min_backoff=settings.jobs_min_backoff_ms,
            max_backoff=settings.jobs_max_backoff_ms,
        ),
        HoldOn(),
        CurrentMessage(),
        Heartbeat(
            interval=settings.workers_heartbeat_interval,
            timeout=settings.workers_heartbeat_timeout,
            max_crashes=settings.jobs_max_crashes,
        ),
    ]


def configure(settings):
    """Build the broker, make it Dramatiq's global broker, declare the actors on it."""
    import actors

    broker = FoodBroker(settings, make_client(settings), make_middleware(settings))
    dramatiq.set_broker(broker)
    actors.declare(broker)
    return broker


def includeme(config):
    """Give the web app its broker, as ``request.registry.broker``.

    Not a reified request property: Pyramid builds a new class for every request that has
    one, which cost more than the rest of the order view but the Redis call.
    """
    config.registry.broker = configure(config.registry.foodapp)
