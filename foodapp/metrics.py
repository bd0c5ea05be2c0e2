"""Prometheus metrics for GET /metrics, read from Redis so every process's work counts once.

Two kinds of series (docs/production.md, "Metrics", says what to scrape):

- cluster-wide, read from Redis at each scrape, the same from every web process: queue
  depths, delayed jobs and dead letters, whether each queue is paused and how long its
  head job has waited, jobs in flight, outcomes and run times per queue
  (written by the workers' JobStatus middleware and the sweep), the Redis master, its
  replicas and the failovers seen, the live workers. Scrape one web process for them
  (summing them over web processes would count everything once per process);
- this web process's own: foodapp_enqueue_seconds, and prometheus_client's process_* and
  python_* series. Scrape every web process for them.

Every help text says what is counted, and which of the two kinds the series is.
"""
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from foodapp import jobs, queues as _queues, series
from foodapp.replicas import FAILOVERS

ENQUEUE_LATENCY = Histogram(
    "foodapp_enqueue_seconds",
    "Seconds this web process spent storing orders in Redis, replica acknowledgements (WAIT) and retries through "
    "a failover included: one observation per order, menu or report request that reached the enqueue, whatever "
    "its answer (202, an idempotent replay, 503). This web process only.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RedisCollector:
    """Collects, at each scrape, what Redis knows of every worker and queue."""

    def __init__(self, broker):
        self.broker = broker

    def collect(self):
        broker, client = self.broker, self.broker.client
        queues = sorted(broker.queues)
        ns = broker.namespace
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.llen(f"{ns}:{queue}")
                pipe.hlen(f"{ns}:{queue}.DQ.msgs")
                pipe.zcard(f"{ns}:{queue}.XQ")
                pipe.hgetall(f"{jobs.DURATIONS_PREFIX}{queue}")
            pipe.hgetall(jobs.STATS)
            pipe.zrange(f"{ns}:__heartbeats__", 0, -1)
            pipe.info("replication")
            pipe.hlen(FAILOVERS)
            pipe.info("memory")
            pipe.hgetall(_queues.PAUSED)
            pipe.info("cpu")
            results = pipe.execute()
        per_queue = [results[i * 4:(i + 1) * 4] for i in range(len(queues))]
        stats, workers, replication, failovers, memory, pauses, cpu = results[len(queues) * 4:]

        depth = GaugeMetricFamily(
            "foodapp_queue_depth",
            "Jobs ready to run and not yet taken by a worker: the length of the queue's list in Redis. "
            "Cluster-wide.", labels=["queue"])
        delayed = GaugeMetricFamily(
            "foodapp_queue_delayed",
            "Jobs not yet due: scheduled with ?delay/?eta, or waiting for their next retry (the queue's delay "
            "queue in Redis). Cluster-wide.", labels=["queue"])
        dead = GaugeMetricFamily(
            "foodapp_queue_dead_letters",
            "Jobs in the queue's dead-letter queue (dead or failed, kept jobs.dead_letter_ttl seconds), "
            "waiting to be requeued or deleted. Cluster-wide.", labels=["queue"])
        runs = HistogramMetricFamily(
            "foodapp_job_duration_seconds",
            "Seconds each run of a job took in its worker, from its start to done, failed, dead or a retry "
            "(a run whose worker died is not observed). Cluster-wide.", labels=["queue"])
        for queue, (length, waiting, letters, durations) in zip(queues, per_queue):
            depth.add_metric([queue], length)
            delayed.add_metric([queue], waiting)
            dead.add_metric([queue], letters)
            runs.add_metric([queue], *self._histogram(durations))
        yield from (depth, delayed, dead, runs)

        paused = GaugeMetricFamily(
            "foodapp_queue_paused",
            "1 while the queue is paused (from the console or `foodapp pause`): workers take none of its jobs, "
            "orders are still accepted and wait in it; 0 otherwise. Cluster-wide.", labels=["queue"])
        paused_names = {name.decode() for name in pauses}
        for queue in queues:
            paused.add_metric([queue], 1 if queue in paused_names else 0)
        yield paused
        latency = GaugeMetricFamily(
            "foodapp_queue_latency_seconds",
            "Seconds the job at the head of the queue (the next to run) has waited since it was queued (or "
            "requeued, or came due); 0 when the queue is empty. It grows while the queue is paused or its "
            "workers are busy or down. Cluster-wide.", labels=["queue"])
        for queue, seconds in _queues.head_waits(broker, queues).items():
            latency.add_metric([queue], seconds)
        yield latency

        in_flight = GaugeMetricFamily(
            "foodapp_jobs_in_flight",
            "Jobs taken from the queue by a worker with a heartbeat and not yet acknowledged (running, or "
            "fetched and waiting for a free thread). Cluster-wide.", labels=["queue"])
        with client.pipeline(transaction=False) as pipe:
            for worker in workers:
                for queue in queues:
                    pipe.scard(f"{ns}:__acks__.{worker.decode()}.{queue}")
            held = pipe.execute()
        for i, queue in enumerate(queues):
            in_flight.add_metric([queue], sum(held[i::len(queues)]) if queues else 0)
        yield in_flight

        outcomes = CounterMetricFamily(
            "foodapp_jobs",
            "Runs of jobs that ended, by how: done; retried (it raised and will run again); failed (it raised an "
            "error its actor declares not worth retrying); dead (retries used up, or its worker died "
            "jobs.max_crashes times); crashed (its worker died during the run). A job counts once per run. "
            "Cluster-wide.", labels=["queue", "outcome"])
        counted = {key.decode(): float(value) for key, value in stats.items()}
        for queue in queues:
            for outcome in jobs.OUTCOMES:
                outcomes.add_metric([queue, outcome], counted.get(f"{queue}:{outcome}", 0.0))
        yield outcomes

        role = GaugeMetricFamily(
            "foodapp_redis_master",
            "1 if the Redis server the web processes write to says it is a master (INFO replication), else 0: "
            "a replica, say during a failover. Cluster-wide.")
        role.add_metric([], 1 if replication.get("role") == "master" else 0)
        yield role
        replicas = GaugeMetricFamily(
            "foodapp_redis_replicas_online",
            "Replicas connected to the master and in sync (state online in its INFO replication). Cluster-wide.")
        replicas.add_metric([], sum(1 for k, v in replication.items()
                                    if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"))
        yield replicas
        failover_count = CounterMetricFamily(
            "foodapp_redis_failovers",
            "Failovers (a new master promoted by Sentinel) that any web process saw and wrote down in Redis, "
            "since the Redis data began. Cluster-wide.")
        failover_count.add_metric([], failovers)
        yield failover_count
        live = GaugeMetricFamily(
            "foodapp_workers",
            "Dramatiq worker processes with a heartbeat in Redis: live ones, and stopped or dead ones until a "
            "live worker's sweep removes them (after workers.heartbeat_timeout). Cluster-wide.")
        live.add_metric([], len(workers))
        yield live
        used = GaugeMetricFamily(
            "foodapp_redis_memory_used_bytes",
            "Bytes the Redis master uses (INFO memory used_memory), all of foodapp's data on it. Cluster-wide.")
        used.add_metric([], int(memory.get("used_memory", 0)))
        yield used
        limit = GaugeMetricFamily(
            "foodapp_redis_memory_max_bytes",
            "The Redis master's maxmemory in bytes (0: no limit). Past it, with maxmemory-policy noeviction, Redis "
            "refuses writes and orders get 503: the headroom is this minus foodapp_redis_memory_used_bytes. "
            "Cluster-wide.")
        limit.add_metric([], int(memory.get("maxmemory", 0)))
        yield limit
        busy = CounterMetricFamily(
            "foodapp_redis_cpu_seconds",
            "CPU seconds the Redis master's main thread has used since it started (INFO cpu, user + system): "
            "it runs every command of every web process and worker on one core, so its rate is the share "
            "of that core in use, and at 1 the whole deployment is at its ceiling (docs/production.md). "
            "Cluster-wide.")
        busy.add_metric([], series.redis_cpu_seconds(cpu))
        yield busy

    @staticmethod
    def _histogram(raw):
        fields = {key.decode(): float(value) for key, value in raw.items()}
        buckets, cumulative = [], 0.0
        for bound in jobs.DURATION_BUCKETS:
            cumulative += fields.get(f"{bound:g}", 0.0)
            buckets.append((f"{bound:g}", cumulative))
        buckets.append(("+Inf", cumulative + fields.get("+Inf", 0.0)))
        return buckets, fields.get("sum", 0.0)


def exposition(broker):
    """The text of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(broker))
    return generate_latest(registry) + generate_latest()
