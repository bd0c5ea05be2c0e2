"""Heartbeat: worker liveness, and a deterministic sweep of dead workers' jobs.

Dramatiq records a worker's heartbeat only when it talks to Redis (a fetch or an ack), so a
worker busy with a long job looks dead; and it gives a dead worker's jobs back only on a
1-in-1000 chance per command after 60 s. Here each worker process has a thread that, every
``workers.heartbeat_interval`` seconds:

1. records its heartbeat (Dramatiq's ``__heartbeats__`` sorted set, plus a hash describing
   the worker process for the console's Workers page: host, pid, its Dramatiq main process
   and supervisord program, queues, threads, jobs running now and done, memory, CPU), then
2. runs ``sweep.lua``: the jobs held by every worker silent for more than
   ``workers.heartbeat_timeout`` go back to the head of their queues, and a job that was
   running on a dead worker ``jobs.max_crashes`` times goes to the dead-letter queue.

So a job held by a worker killed with ``kill -9`` runs again within timeout + interval.
After a time when nobody could reach Redis (a failover, say), every worker is given a whole
timeout to beat again before it counts as dead (see sweep.lua).

(The jobs Redis lists as held by a live worker that does not hold them, after a failover
lost its acknowledgements, say, are given back by that worker's consumers: see consumer.py.)
"""
import logging
import multiprocessing
import os
import socket
import threading
import time

import redis
from dramatiq.middleware import Middleware

from foodapp import jobs, series

log = logging.getLogger(__name__)

#: When the last sweep ran, and when sweeping resumed after Redis was out of reach (ms).
SWEEP_CLOCK = "foodapp:sweep"


class Heartbeat(Middleware):

    def __init__(self, *, interval, timeout, max_crashes):
        self.interval = interval
        self.timeout = timeout
        self.max_crashes = max_crashes
        self._stop = threading.Event()
        self._thread = None
        self.load = Load()

    def after_worker_boot(self, broker, worker):
        self._sweep = broker.client.register_script(jobs.composed("sweep", "wake"))
        self._info = {
            "name": broker.worker_name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            # Dramatiq's main process: the pid supervisord knows (getAllProcessInfo), so the
            # console can tell which program this process belongs to.
            "ppid": main_pid(),
            "program": supervisor_program(),
            "queues": " ".join(sorted(worker.consumer_whitelist or broker.queues)),
            "threads": worker.worker_threads,
            "started_at": jobs.now(),
        }
        self.load.reset()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(broker,), name="foodapp-heartbeat", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker, worker):
        self._stop.set()
        if self._thread:
            self._thread.join(self.interval + broker.settings.redis_socket_timeout)

    def after_worker_shutdown(self, broker, worker):
        # The dones still waiting to ride with a start (commits.py) go first: once this
        # worker says it stopped, a sweep gives back what its ack sets hold.
        try:
            broker.jobs.commits.flush()
        except redis.RedisError as error:
            log.warning("could not write the last jobs' dones (%s): they run again", error)
        # Mark this worker as dead at once rather than removing it: if a job outlived the
        # shutdown timeout, it is still in this worker's ack set, and the next sweep by any
        # other worker gives it back without waiting for the heartbeat timeout.
        try:
            broker.client.zadd(f"{broker.namespace}:__heartbeats__", {broker.broker_id: 0})
        except redis.RedisError as error:
            log.warning("could not mark worker %s as stopped: %s", broker.worker_name, error)

    # Jobs running now and done, counted by this process's worker threads.

    def before_process_message(self, broker, message):
        self.load.started()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        self.load.finished(done=True)

    def after_skip_message(self, broker, message):
        self.load.finished(done=False)

    def _run(self, broker):
        while not self._stop.is_set():
            try:
                self.beat(broker)
                requeued, dead_lettered, swept = self.sweep(broker)
                if requeued or dead_lettered:
                    log.warning(
                        "gave back the jobs of %d dead worker(s): %d requeued, %d dead-lettered",
                        swept, requeued, dead_lettered,
                    )
            except redis.RedisError as error:
                log.warning("heartbeat: Redis (%s) did not answer: %s", broker.client, error)
            # The console's charts of queue depth, latency and workers: one sample per
            # 10-second slot, whoever comes first (every worker tries; the others pay
            # one HSETNX). Never raises.
            series.sample(broker)
            self._stop.wait(self.interval)

    def beat(self, broker):
        now_ms = int(time.time() * 1000)
        key = f"{jobs.WORKER_PREFIX}{broker.broker_id}"
        with broker.client.pipeline(transaction=False) as pipe:
            pipe.zadd(f"{broker.namespace}:__heartbeats__", {broker.broker_id: now_ms})
            pipe.hset(key, mapping={**self._info, **self.load.sample(), "last_seen": f"{now_ms / 1000:.3f}"})
            pipe.expire(key, int(self.timeout * 3))
            pipe.execute()

    def sweep(self, broker):
        return self._sweep(
            keys=[broker.namespace, jobs.STATUS_PREFIX, jobs.WORKER_PREFIX, SWEEP_CLOCK],
            args=[
                int(time.time() * 1000),
                int(self.timeout * 1000),
                self.max_crashes,
                broker.settings.jobs_status_ttl,
                broker.settings.jobs_dead_letter_ttl * 1000,
                # No sweep for half a timeout: Redis was out of reach, and nobody could beat.
                int(self.timeout * 500),
                *sorted(broker.queues),
            ],
        )


class Load:
    """What one worker process is doing, cheap to keep: jobs running now (``busy``), jobs
    finished (``done``), and, sampled at each beat, its memory and CPU.

    ``busy`` is counted per worker thread: a thread counts once from the first
    before_process_message hook that reaches this middleware until its after hook, so a
    message skipped by an earlier middleware (AgeLimit raises before this one runs) never
    makes it negative.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._local = threading.local()
        self.reset()

    def reset(self):
        with self._lock:
            self.busy = 0
            self.done = 0
        self._cpu = cpu_seconds()
        self._wall = time.monotonic()
        self._cpu_percent = 0.0

    def started(self):
        if getattr(self._local, "running", False):
            return
        self._local.running = True
        with self._lock:
            self.busy += 1

    def finished(self, done):
        if not getattr(self._local, "running", False):
            return
        self._local.running = False
        with self._lock:
            self.busy -= 1
            self.done += done

    def sample(self):
        """The fields a beat writes: busy, done, rss_bytes and cpu_percent (the process's
        CPU time over the wall time since the previous beat, 100 = one core)."""
        cpu, wall = cpu_seconds(), time.monotonic()
        if wall - self._wall > 0.05:  # a beat right after another keeps the last figure
            self._cpu_percent = 100 * (cpu - self._cpu) / (wall - self._wall)
            self._cpu, self._wall = cpu, wall
        with self._lock:
            busy, done = self.busy, self.done
        return {"busy": busy, "done": done, "rss_bytes": rss_bytes(), "cpu_percent": f"{self._cpu_percent:.1f}"}


def cpu_seconds():
    """User and system CPU time of this process, every thread included."""
    times = os.times()
    return times.user + times.system


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes():
    """This process's resident memory now (/proc/self/statm), or its peak where there is no /proc."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def main_pid():
    """The pid of Dramatiq's main process that forked this worker process (the one
    supervisord started), or the parent's pid when not started by Dramatiq's command."""
    main = multiprocessing.parent_process()
    return main.pid if main is not None else os.getppid()


def supervisor_program():
    """The supervisord program this process runs under, as supervisorctl names it
    ("workers:workers_00"), from the variables supervisord sets; empty outside supervisord."""
    name = os.environ.get("SUPERVISOR_PROCESS_NAME", "")
    group = os.environ.get("SUPERVISOR_GROUP_NAME", "")
    if not name:
        return ""
    return f"{group}:{name}" if group and group != name else name
