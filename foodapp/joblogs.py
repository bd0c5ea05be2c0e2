"""Per-job logs: what an actor logged while it ran a job, kept beside the job's status.

``JobLogHandler`` is a logging handler that keeps the records made while a job runs (the
job's id is logcontext's context variable, set by the JobLogContext middleware) in a capped
Redis list per job, ``foodapp:job:<job_id>:logs``: the last ``MAX_LINES`` lines, each cut
to ``MAX_LINE`` bytes, expiring ``jobs.status_ttl`` after the last one, as the status does.
The console's job page shows them (``read``).

The job never waits for Redis: ``emit`` only puts the line in a bounded in-memory queue; a
background thread writes what has gathered, one pipelined round trip per batch. When Redis
is down or slow, lines are dropped (the queue is full, or a batch failed) and counted, with
a warning at most every ``WARN_EVERY`` seconds; a job never fails because of its logs.

Why the ini route: the handler is named in the [logging] sections of development.ini,
testing.ini and production.ini (on the root logger, beside the console handler), so the
levels and loggers an operator configures decide what a job's page shows, exactly as they
decide what the worker's log shows, and tests or tools that load no ini get no Redis
writes from their logging. It takes no arguments there: the ini's logging is set up before
the broker exists, so it finds Redis and the ttl through Dramatiq's global broker when the
first line of a job comes. In a process with no job running (the web app), it ignores
every record at the cost of one context variable read.
"""
import json
import logging
import queue
import threading
import time

from foodapp import jobs
from foodapp.logcontext import JOB_ID

MAX_LINES = 200
MAX_LINE = 2048
#: Lines waiting for the writer; beyond this they are dropped (and counted).
MAX_PENDING = 10000
#: Most lines one write sends.
BATCH = 500
WARN_EVERY = 10.0

log = logging.getLogger(__name__)


def logs_key(job_id):
    return f"{jobs.STATUS_PREFIX}{job_id}:logs"


def read(client, job_id, count=MAX_LINES):
    """A job's log lines, oldest first: [{"at" (ISO 8601), "level", "logger", "message"}]."""
    lines = []
    for raw in client.lrange(logs_key(job_id), -count, -1):
        try:
            line = json.loads(raw)
            line["at"] = jobs.iso(line["at"])
        except (ValueError, KeyError, TypeError):
            continue
        lines.append(line)
    return lines


def _cut(text, limit=MAX_LINE):
    """``text`` cut to at most ``limit`` bytes of UTF-8 (on a character boundary)."""
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit - 3].decode("utf-8", "ignore") + "..."


class JobLogHandler(logging.Handler):
    """Keeps the lines logged during a job in Redis, never blocking or failing the job."""

    def __init__(self, level=logging.NOTSET):
        super().__init__(level)
        self._pending = queue.Queue(MAX_PENDING)
        self._writer = None
        self._writer_lock = threading.Lock()
        self.dropped = 0
        self._dropped_reported = 0
        self._warned = float("-inf")

    def emit(self, record):
        job_id = getattr(record, "job_id", None) or JOB_ID.get()
        if not job_id:
            return
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[0] is not None:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            line = jobs.encode({"at": f"{record.created:.3f}", "level": record.levelname, "logger": record.name,
                                "message": _cut(message, MAX_LINE - 200)})
        except Exception:  # a bad format string in someone's call: logging's own way out
            self.handleError(record)
            return
        try:
            self._pending.put_nowait((job_id, line))
        except queue.Full:
            self.dropped += 1
        self._start()

    def _start(self):
        if self._writer is not None:
            return
        with self._writer_lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_forever, name="foodapp-job-logs", daemon=True)
                self._writer.start()

    @staticmethod
    def _broker():
        import dramatiq.broker

        broker = dramatiq.broker.global_broker
        return broker if broker is not None and hasattr(broker, "jobs") else None

    def _write_forever(self):
        while True:
            batch = [self._pending.get()]
            while len(batch) < BATCH:
                try:
                    batch.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch):
        broker = self._broker()
        if broker is None:
            self.dropped += len(batch)
            return
        ttl = broker.settings.jobs_status_ttl
        by_job = {}
        for job_id, line in batch:
            by_job.setdefault(job_id, []).append(line)
        try:
            with broker.client.pipeline(transaction=False) as pipe:
                for job_id, lines in by_job.items():
                    key = logs_key(job_id)
                    pipe.rpush(key, *lines[-MAX_LINES:])
                    pipe.ltrim(key, -MAX_LINES, -1)
                    pipe.expire(key, ttl)
                pipe.execute()
        except Exception as error:  # Redis down, failing over, out of memory: drop, count, go on
            self.dropped += len(batch)
            self._warn(error)
            return
        self._warn(None)

    def _warn(self, error):
        now = time.monotonic()
        if self.dropped > self._dropped_reported and now - self._warned >= WARN_EVERY:
            self._warned = now
            log.warning("dropped %d job log line(s) so far (%s): the jobs ran on, only these lines of their logs "
                        "are missing", self.dropped, error or "too many lines waiting for Redis")
            self._dropped_reported = self.dropped

    def flush(self):
        """Wait (a little, bounded) for the lines already logged to be written."""
        deadline = time.monotonic() + 2.0
        while not self._pending.empty() and self._writer is not None and time.monotonic() < deadline:
            time.sleep(0.01)
