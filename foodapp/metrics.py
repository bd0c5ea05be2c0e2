"""Prometheus metrics for GET /metrics, read from Redis so every process's work counts once.

Queue depths, delayed and dead letters, jobs in flight, outcomes and run times per queue
(written by the workers' JobStatus middleware and the sweep), the Redis topology and the
failovers seen come from Redis at each scrape. Only the enqueue latency is this web
process's own.
"""
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from foodapp import jobs
from foodapp.replicas import FAILOVERS

ENQUEUE_LATENCY = Histogram(
    "foodapp_enqueue_seconds", "Time to store an order in Redis (with its replica acknowledgement), in this web process",
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
            results = pipe.execute()
        per_queue = [results[i * 4:(i + 1) * 4] for i in range(len(queues))]
        stats, workers, replication, failovers = results[len(queues) * 4:]

        depth = GaugeMetricFamily("foodapp_queue_depth", "Jobs waiting in the queue", labels=["queue"])
        delayed = GaugeMetricFamily("foodapp_queue_delayed", "Jobs scheduled or waiting to be retried", labels=["queue"])
        dead = GaugeMetricFamily("foodapp_queue_dead_letters", "Jobs in the dead-letter queue", labels=["queue"])
        runs = HistogramMetricFamily("foodapp_job_duration_seconds", "Run time of jobs", labels=["queue"])
        for queue, (length, waiting, letters, durations) in zip(queues, per_queue):
            depth.add_metric([queue], length)
            delayed.add_metric([queue], waiting)
            dead.add_metric([queue], letters)
            runs.add_metric([queue], *self._histogram(durations))
        yield from (depth, delayed, dead, runs)

        in_flight = GaugeMetricFamily("foodapp_jobs_in_flight", "Jobs held by live workers", labels=["queue"])
        with client.pipeline(transaction=False) as pipe:
            for worker in workers:
                for queue in queues:
                    pipe.scard(f"{ns}:__acks__.{worker.decode()}.{queue}")
            held = pipe.execute()
        for i, queue in enumerate(queues):
            in_flight.add_metric([queue], sum(held[i::len(queues)]) if queues else 0)
        yield in_flight

        outcomes = CounterMetricFamily("foodapp_jobs", "Jobs by outcome", labels=["queue", "outcome"])
        counted = {key.decode(): float(value) for key, value in stats.items()}
        for queue in queues:
            for outcome in jobs.OUTCOMES:
                outcomes.add_metric([queue, outcome], counted.get(f"{queue}:{outcome}", 0.0))
        yield outcomes

        role = GaugeMetricFamily("foodapp_redis_master", "1 when the Redis we write to is a master", labels=["role"])
        role.add_metric([replication.get("role", "unknown")], 1 if replication.get("role") == "master" else 0)
        yield role
        replicas = GaugeMetricFamily("foodapp_redis_replicas_online", "Replicas the master sees online")
        replicas.add_metric([], sum(1 for k, v in replication.items()
                                    if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"))
        yield replicas
        failover_count = CounterMetricFamily("foodapp_redis_failovers", "Failovers seen by the web processes")
        failover_count.add_metric([], failovers)
        yield failover_count
        live = GaugeMetricFamily("foodapp_workers", "Worker processes with a heartbeat")
        live.add_metric([], len(workers))
        yield live

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
