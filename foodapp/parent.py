"""Ties each Dramatiq worker process to its main process: it stops when the main is gone.

Dramatiq's worker processes never look at their parent. When the main process is killed
(kill -9, the OOM killer) they would go on taking jobs outside supervisord's control, out of
reach of `supervisorctl stop`, beside the new main supervisord starts. So each worker
process checks that its parent is still the main process that forked it; when it is not, it
sends itself SIGHUP: Dramatiq's graceful stop (as for TERM), which finishes or hands back its
jobs (what it cannot, the heartbeat sweep gives back) and exits.

Under ``--watch`` (development), Dramatiq's main passes on one SIGHUP per file event (one
save is several), and a TERM when it is stopped (Ctrl-C, `supervisorctl stop`), whether or
not a reload is under way; Dramatiq's worker process takes any second signal as "exit now",
cutting its jobs short. So a worker process stops once: a SIGHUP, or a first TERM, once it
is stopping is let go; only a second TERM (a second Ctrl-C) cuts its jobs short, as before.
"""
import logging
import multiprocessing
import os
import signal
import threading
import time

from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)


class Parent(Middleware):

    def __init__(self, interval=0.5):
        self.interval = interval

    def after_process_boot(self, broker):
        main = multiprocessing.parent_process()
        if main is None or not stop_once():
            return  # not a worker process forked by Dramatiq's main: nothing to follow
        threading.Thread(target=self._watch, args=(main.pid,), name="foodapp-parent-watch", daemon=True).start()

    def _watch(self, main_pid):
        # The pid recorded at fork, not os.getppid() read now: a main that died before this
        # thread started is seen too.
        while os.getppid() == main_pid:
            time.sleep(self.interval)
        log.warning("Dramatiq's main process %d is gone: this worker process stops gracefully", main_pid)
        # HUP, not TERM: if the main had begun to stop this process before it died, a TERM
        # would be the second one and cut its jobs short; a HUP is let go (see stop_once).
        os.kill(os.getpid(), signal.SIGHUP)


def stop_once():
    """Wrap the TERM and HUP handlers Dramatiq installed so that it is asked to stop once.

    Runs in the worker process's main thread (signal handlers can be set only there).
    Whether there were handlers to wrap.
    """
    on_term, on_hup = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)
    if not (callable(on_term) and callable(on_hup)):
        return False
    stopping, terms = False, 0

    def term(signum, frame):
        nonlocal stopping, terms
        terms += 1
        if not stopping or terms > 1:
            stopping = True
            on_term(signum, frame)

    def hup(signum, frame):
        nonlocal stopping
        if not stopping:
            stopping = True
            on_hup(signum, frame)

    signal.signal(signal.SIGTERM, term)
    signal.signal(signal.SIGHUP, hup)
    return True
