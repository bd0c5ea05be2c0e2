"""JobStatus: Dramatiq middleware that keeps each job's status record up to date.

The enqueue writes ``queued`` (or ``scheduled``, ``retrying``) with the message itself (see
FoodBroker). This middleware, in the worker, writes ``running`` with the worker that took
the job, then ``done`` with its result, or ``dead`` / ``failed`` with the error when Dramatiq
gives up on it. A retry is written by the re-enqueue, so it is left alone here.

A job an operator cancelled while it waited is not started (start.lua answers -2 and has
acknowledged its message): it is skipped, and nothing more is written.

``done`` is not written here but handed to the ack (``message._foodapp_done``), which writes it in
the same Lua call: one round trip instead of two, and no moment when a job is done but
still in the worker's ack set (where a crash would have it run again).
"""
import itertools
import os
import time

from dramatiq.middleware import Middleware, SkipMessage

from foodapp import jobs
from foodapp.consumer import acks_key
from foodapp.durable import hold_on


#: Numbers this process's starts: with the broker's id, a delivery token no other start has.
_deliveries = itertools.count()


class JobStatus(Middleware):

    def before_process_message(self, broker, message):
        message._foodapp_started = time.monotonic()
        delivery = f"{broker.broker_id}.{next(_deliveries)}"
        # change(..., "running", event="started", ...), built with less work (JobStore.running).
        change = broker.jobs.running(message.message_id, jobs.now(), broker.broker_id, broker.worker_name,
                                     os.getpid(), message.options.get("retries", 0), delivery)
        # Held on to through a failover: a job starts only once its status says running
        # on the master and its replicas (the sweep's crash count relies on it), and only
        # while its message is still this worker's (start.lua).
        started = hold_on(f"starting job {message.message_id}", lambda: broker.jobs.start(
            acks_key(broker, message.queue_name), message.options["redis_message_id"], delivery, change,
            broker.replicas.for_write(), broker.settings.enqueue_replica_timeout_ms,
            f"{broker.namespace}:{message.queue_name}.msgs"))
        if started == -2:
            # Cancelled by an operator (foodapp/search.py): start.lua has acknowledged its
            # message, so nothing is left to ack or to write; it just never runs.
            message._foodapp_released = True
            raise SkipMessage(f"job {message.message_id} was cancelled: it does not run")
        if started != 1:
            # Given back while this worker could not reach Redis: it may be running elsewhere.
            message._foodapp_released = True
            raise SkipMessage(f"job {message.message_id} was given back to its queue before it started here")

    def after_process_message(self, broker, message, *, result=None, exception=None):
        queue = message.queue_name
        if exception is None:
            # Written by the ack, in the same Lua call (FifoConsumer.ack, finish.lua): done
            # with its counters, only from running on this worker (JobStore.done).
            message._foodapp_done = broker.jobs.done(message.message_id, broker.broker_id, queue,
                                                     self._run_time(message), result)
        elif message.failed:
            actor = broker.get_actor(message.actor_name)
            throws = message.options.get("throws") or actor.options.get("throws")
            # An error the actor declared with `throws` is not retried: "failed". Retries
            # used up: "dead". Both sit in the dead-letter queue, where they can be requeued.
            state = "failed" if throws and isinstance(exception, throws) else "dead"
            self._finished(broker, message, state, f"{type(exception).__name__}: {exception}")
        else:
            # Retries has already re-enqueued it as "retrying"; keep this attempt's error.
            change = broker.jobs.change(
                message.message_id, "retrying",
                event="error", only_from="retrying",
                counts=[*jobs.outcome(queue, "retried"), *jobs.duration(queue, self._run_time(message))],
                error=f"{type(exception).__name__}: {exception}",
            )
            hold_on(f"recording the error of job {message.message_id}", lambda: broker.jobs.apply(change))

    def after_skip_message(self, broker, message):
        if getattr(message, "_foodapp_released", False):
            return  # not this worker's any more: nothing to write
        if message.failed:
            self._finished(broker, message, "dead", "skipped: the job was too old or rejected by a middleware")

    def _finished(self, broker, message, state, error):
        change = broker.jobs.change(
            message.message_id, state,
            event=state, only_from="running", only_worker=broker.broker_id,
            counts=[*jobs.outcome(message.queue_name, state),
                    *jobs.duration(message.queue_name, self._run_time(message))],
            finished_at=jobs.now(), error=error,
        )
        hold_on(f"recording job {message.message_id} {state}", lambda: broker.jobs.apply(change))

    @staticmethod
    def _run_time(message):
        started = getattr(message, "_foodapp_started", None)
        return time.monotonic() - started if started is not None else 0.0
