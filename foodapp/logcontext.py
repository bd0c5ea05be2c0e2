"""The job a log line was written for: ``job_id`` on every log record made while a job runs.

In a worker, ``JobLogContext`` (the first of the broker's middleware, added by
foodapp/worker.py) sets a context variable when a worker thread takes a message and clears
it when the thread is done with it, so whatever logs meanwhile (the actor, Dramatiq's
retries and time limits, foodapp's middleware) is tagged with that job's id, the same id
as in ``/api/jobs/<job_id>``. ``install()`` puts it on each record as ``record.job_id``
(None outside a job):

- production.ini's JSON formatter lists ``%(job_id)s``: ``"job_id": "f12f..."`` (null on
  lines written outside a job);
- ``TextFormatter`` (testing.ini's plain lines) appends ``[job f12f...]`` to a line written
  during a job and leaves the others as they were.
"""
import contextvars
import logging

from dramatiq.middleware import Middleware

JOB_ID = contextvars.ContextVar("foodapp_job_id", default=None)


def install():
    """Tag every log record made from now on with the running job's id. Safe to call twice."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "foodapp_job_id", False):
        return

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        record.job_id = JOB_ID.get()
        return record

    factory.foodapp_job_id = True
    logging.setLogRecordFactory(factory)


class TextFormatter(logging.Formatter):
    """logging.Formatter, with `` [job <id>]`` after the message of a line written during a job."""

    def formatMessage(self, record):
        text = super().formatMessage(record)
        job_id = getattr(record, "job_id", None)
        return f"{text} [job {job_id}]" if job_id else text


class JobLogContext(Middleware):
    """Sets JOB_ID for the worker thread that runs a message, from its first hook to its last.

    Dramatiq runs "before" hooks first-to-last and "after" hooks last-to-first: as the first
    middleware, this one covers every other middleware's hooks and the actor itself.
    """

    def before_process_message(self, broker, message):
        JOB_ID.set(message.message_id)

    def after_process_message(self, broker, message, *, result=None, exception=None):
        JOB_ID.set(None)

    def after_skip_message(self, broker, message):
        JOB_ID.set(None)
