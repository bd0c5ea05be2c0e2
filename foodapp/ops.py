"""What the operations page shows, read from Redis with O(1) commands per queue and worker
(no KEYS, no scans of the jobs), so it stays fast with any number of jobs."""
import json
import time

import redis

from foodapp import jobs, processes
from foodapp import queues as queues_
from foodapp.replicas import FAILOVERS
from foodapp.security import audit_log
from foodapp.readiness import readiness


def workers(broker):
    """Every worker with a heartbeat record: alive, late, dead or stopped, and what it holds
    (foodapp/processes.py, which the Workers page shows in full)."""
    return processes.describe(broker)


def per_minute(client, minutes=10):
    """Jobs done, failed, dead and retried in each of the last minutes, per queue."""
    current = int(time.time() // 60)
    with client.pipeline(transaction=False) as pipe:
        for minute in range(current - minutes + 1, current + 1):
            pipe.hgetall(f"{jobs.MINUTE_PREFIX}{minute}")
        replies = pipe.execute()
    rows = []
    for offset, counts in enumerate(replies):
        minute = current - minutes + 1 + offset
        rows.append({"minute": jobs.iso(minute * 60)[11:16],
                     "counts": {k.decode(): int(float(v)) for k, v in counts.items()}})
    return rows


def memory(client):
    """The Redis master's memory (INFO memory): used and maxmemory in bytes, the headroom
    (what may still be written before Redis refuses writes with OOM, maxmemory-policy
    noeviction) and the share used; ``max`` 0 means no limit is set (then no headroom)."""
    info = client.info("memory")
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    return {
        "used": used, "max": limit, "policy": info.get("maxmemory_policy", ""),
        "headroom": max(limit - used, 0) if limit else None,
        "used_percent": round(100 * used / limit, 1) if limit else None,
    }


def human_bytes(count):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024


def worker_counts(broker, now=None):
    """How many worker processes are alive, late, dead and stopped: one ZRANGE of the
    heartbeats (the Workers page has the details)."""
    settings = broker.settings
    now = time.time() if now is None else now
    counts = dict.fromkeys(("alive", "late", "dead", "stopped"), 0)
    for _, beat_ms in broker.client.zrange(f"{broker.namespace}:__heartbeats__", 0, -1, withscores=True):
        silent = now - beat_ms / 1000
        counts[processes.state(beat_ms, silent, settings.workers_heartbeat_interval,
                               settings.workers_heartbeat_timeout)] += 1
    counts["total"] = sum(counts.values())
    return counts


def overview(broker, audit_entries=20):
    """What the overview page and GET /ops/api/overview show, JSON-ready: whether Redis takes
    jobs and its topology, failovers, memory, the audit log's tail, the queues and the
    workers' counts. A fixed number of Redis commands per queue and worker."""
    client = broker.client
    ready, reason, seen = readiness(broker)
    failovers = sorted((json.loads(v) for v in client.hvals(FAILOVERS)),
                       key=lambda entry: entry["epoch"], reverse=True)
    for entry in failovers:
        entry["at"] = jobs.iso(entry["at"])
    audit = audit_log(client, audit_entries)
    for entry in audit:
        entry["at"] = jobs.iso(entry["at"])
    try:
        used = memory(client)
    except redis.RedisError as error:
        used = {"error": str(error)}
    return {
        "ready": ready, "reason": reason, "topology": seen, "failovers": failovers, "memory": used,
        "audit": audit, "queues": queues_.describe(broker), "workers": worker_counts(broker),
        "at": jobs.iso(time.time()),
    }
