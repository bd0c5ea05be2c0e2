"""Holding on to a write until Redis takes it: what a worker does through a failover.

A worker that has run a job, or must store its retry, its delay or its dead letter, cannot
give up the way a web request does (answer 503 and let the client try again): the job is in
its hands. If it let go (acknowledged the message) without the write stored, the job would
be lost; so it keeps the message, and its entry in the worker's ack set, and tries again,
however long the failover lasts. Should the worker die meanwhile, the message is still in
its ack set, and the heartbeat sweep gives it back.
"""
import logging
import time

import dramatiq.middleware
import redis
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)


class NotReplicated(redis.RedisError):
    """The master stored the write but too few replicas acknowledged it in time.

    ``reply`` is what the master answered to the write itself.
    """

    def __init__(self, message, reply=None):
        super().__init__(message)
        self.reply = reply


class TooFewReplicas(redis.RedisError):
    """A write was not sent: the master has fewer replicas online than it must wait for, so
    its ``WAIT`` could only time out (foodapp/replicas.py). Nothing was stored."""


# Errors after which a write may be tried again: the server is down or unreachable, a
# failover is under way (no master yet, or the old master is now a read-only replica), the
# master refuses writes because it lost its replicas (min-replicas-to-write) or is full
# (maxmemory with noeviction), or a replica did not acknowledge in time.
# redis-py raises OutOfMemoryError for an OOM reply, without the "OOM" prefix in its text.
RETRYABLE = (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError, redis.exceptions.OutOfMemoryError,
             NotReplicated, TooFewReplicas)
RETRYABLE_REPLIES = ("NOREPLICAS", "LOADING", "MASTERDOWN", "OOM", "TRYAGAIN")


def replicated(own, script, keys, args, replicas, timeout_ms, what):
    """Run a registered ``script`` on ``own`` connection (foodapp/connection.py) and, with
    ``replicas``, WAIT for that many replicas to have what it wrote; its reply, or
    NotReplicated (with the reply) when too few replicas confirm."""
    reply, acknowledged = own.call(script, keys, args, replicas, timeout_ms)
    if acknowledged < replicas:
        raise NotReplicated(f"{acknowledged} of {replicas} replica(s) acknowledged {what} within {timeout_ms} ms",
                            reply=reply)
    return reply


def is_retryable(error):
    if isinstance(error, redis.AuthenticationError):
        return False  # a wrong user or password (a ConnectionError to redis-py): no failover mends it
    return isinstance(error, RETRYABLE) or (
        isinstance(error, redis.ResponseError) and str(error).startswith(RETRYABLE_REPLIES)
    )


#: Longest pause between two attempts (s), and how often a held write is logged again.
MAX_PAUSE = 0.5
LOG_EVERY = 10.0


def pauses():
    """The pauses between attempts at a write against a server that is failing over (s):
    0.05, doubling up to MAX_PAUSE. A backoff, not a wait for a condition Redis could tell
    us about: the attempt itself asks (a Sentinel pool asks the Sentinels for the master)."""
    pause = 0.05
    while True:
        yield pause
        pause = min(pause * 2, MAX_PAUSE)


def hold_on(what, write):
    """Call ``write()`` until it succeeds; retryable Redis errors never escape.

    ``what`` names the write for the log ("storing the retry of job <id>").
    """
    waits = pauses()
    began = time.monotonic()
    logged = 0.0
    while True:
        try:
            result = write()
        except redis.RedisError as error:
            if not is_retryable(error):
                raise
            now = time.monotonic()
            if now - logged >= LOG_EVERY:
                logged = now
                log.warning("%s: Redis did not take it (%s); holding on to the job and trying again "
                            "(%.0f s so far)", what, error, now - began)
            time.sleep(next(waits))
            continue
        if logged:
            log.warning("%s: stored after %.1f s", what, time.monotonic() - began)
        return result


class HoldOn(Middleware):
    """Makes the broker of a worker process hold on to its writes (see above).

    The web app's broker does not: a request gives up after ``enqueue.retry_seconds`` and
    answers 503, and the client decides what to do.
    """

    def after_worker_boot(self, broker, worker):
        broker.holds_on = True


class Retries(dramatiq.middleware.Retries):
    """Dramatiq's Retries, except that a retry it fails to store is never dropped.

    Dramatiq logs an error raised by a middleware and goes on to acknowledge the message, so a
    retry that could not be stored would lose the job. Retryable errors never get here (the
    worker's broker holds on, above); any other one dead-letters the message instead, where it
    is seen and can be requeued.
    """

    def after_process_message(self, broker, message, *, result=None, exception=None):
        try:
            super().after_process_message(broker, message, result=result, exception=exception)
        except Exception:
            log.exception("could not store the retry of job %s; it goes to the dead letters", message.message_id)
            message.fail()
