"""The worker entry point: ``dramatiq foodapp.worker --queues comer beber``.

Reads the ini named by ``FOODAPP_INI`` (default ``development.ini``), sets up logging from
its ``[logging]`` sections, and configures the broker exactly as the web app does; each
worker process also stops when its Dramatiq main process is gone (see parent.py).

Logging is the ini's alone: supervisor/production.conf runs ``dramatiq --skip-logging``, so
Dramatiq adds no handler of its own beside the ini's (its plain-text lines would break
production's JSON logs). A line logged while a job runs carries the job's id (logcontext.py).
"""
import logging.config
import os


from foodapp import broker as _broker
from foodapp import consumer as _consumer
from foodapp import logcontext as _logcontext
from foodapp import parent as _parent
from foodapp import settings as _settings
from foodapp import status as _status

INI = os.environ.get("FOODAPP_INI", "development.ini")


class _ResultsAreKept(logging.Filter):
    """Drop Dramatiq's warning that a returned value is discarded: JobStatus keeps it."""

    def filter(self, record):
        return "Results middleware" not in record.getMessage()


broker = _broker.configure(_settings.load_for_process(INI))
# Only here, not in configure(): the web app's processes have no Dramatiq main to follow.
broker.add_middleware(_parent.Parent())
# A job of a queue paused after its message was fetched is handed back, not started: before
# JobStatus, which would mark it running (foodapp/queues.py, consumer.PauseGate).
broker.add_middleware(_consumer.PauseGate(), before=_status.JobStatus)
# First of all: its "before" hook runs before, and its "after" hooks after, every other one's.
broker.add_middleware(_logcontext.JobLogContext(), before=type(broker.middleware[0]))
logging.getLogger("dramatiq.worker.WorkerThread").addFilter(_ResultsAreKept())
