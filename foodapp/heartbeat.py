"""Heartbeat: worker liveness, and a deterministic sweep of dead workers' jobs.

Dramatiq records a worker's heartbeat only when it talks to Redis (a fetch or an ack), so a
worker busy with a long job looks dead; and it gives a dead worker's jobs back only on a
1-in-1000 chance per command after 60 s. Here each worker process has a thread that, every
``workers.heartbeat_interval`` seconds:

1. records its heartbeat (Dramatiq's ``__heartbeats__`` sorted set, plus a hash describing
   the worker for the operations page), then
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
import os
import socket
import threading
import time

import redis
from dramatiq.middleware import Middleware

from foodapp import jobs

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

    def after_worker_boot(self, broker, worker):
        self._sweep = broker.client.register_script(jobs.lua("sweep"))
        self._info = {
            "name": broker.worker_name,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": " ".join(sorted(worker.consumer_whitelist or broker.queues)),
            "started_at": jobs.now(),
        }
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
            self._stop.wait(self.interval)

    def beat(self, broker):
        now_ms = int(time.time() * 1000)
        key = f"{jobs.WORKER_PREFIX}{broker.broker_id}"
        with broker.client.pipeline(transaction=False) as pipe:
            pipe.zadd(f"{broker.namespace}:__heartbeats__", {broker.broker_id: now_ms})
            pipe.hset(key, mapping={**self._info, "last_seen": f"{now_ms / 1000:.3f}"})
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
