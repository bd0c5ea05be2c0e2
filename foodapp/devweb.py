"""`make run`'s web process: Pyramid's `pserve --reload`, except that a server killed by a
signal (kill -9, the OOM killer) is started again at once.

pserve's reloader (hupper) waits for a file to change whenever its server process dies.
That is right after a crash at start-up (a syntax error: fix it, save, and the app comes
back), but a server killed from outside then stays down while supervisord still shows the
program RUNNING, its parent being alive. Here a server that exits with an error still waits
for a change; one killed by a signal is started again; and one ended by the signal that
stops it all (supervisord's SIGTERM) is a clean stop, exit status 0.

    foodapp-dev-web development.ini    (supervisor/development.conf's [program:web])
"""
import sys

from hupper.logger import DefaultLogger
from hupper.reloader import Reloader, WorkerResult, find_default_monitor_factory


class RestartingReloader(Reloader):
    """hupper's Reloader, restarting a worker (the server) that a signal killed."""

    def _run_worker(self):
        result, code = super()._run_worker()
        if result == WorkerResult.WAIT and code is not None and code < 0:
            self.logger.error(f"The server was killed by signal {-code}: starting it again.")
            return WorkerResult.RELOAD, code
        if result == WorkerResult.EXIT and code is not None and code < 0:
            # Told to stop (supervisord's SIGTERM, Ctrl-C), and the server ended by that
            # signal: a stop as asked. hupper would exit with the signal's number (241 for
            # -15), which supervisord reports as an error.
            return result, 0
        return result, code


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    logger = DefaultLogger(1)
    reloader = RestartingReloader(
        # What `pserve --reload <ini>` runs in its server process, watching the same files.
        worker_path="pyramid.scripts.pserve.main",
        worker_kwargs={"argv": ["pserve", "--reload", *argv], "quiet": False},
        monitor_factory=find_default_monitor_factory(logger),
        logger=logger,
        reload_interval=1,
        shutdown_interval=1,
    )
    return reloader.run()
