"""Time series for the console's charts: the last hour (or two) of what foodapp did, read
with O(minutes) Redis commands, whatever the number of jobs.

Three sources, all in Redis so every process's work counts once:

- jobs done, failed, dead and retried per minute and queue: the per-minute counters the
  workers already keep (``foodapp:minute:<minute>``, fields ``<queue>:<outcome>``, see
  jobs.outcome());
- queue depth and latency per queue, the number of live workers, and the CPU seconds the
  Redis master's main thread has used (with the time it was read): sampled here, one
  sample per 10-second slot, into ``foodapp:series:<minute>`` (field ``<slot 0..5>``, a
  JSON ``{"w": workers, "q": {queue: [depth, latency seconds]}, "c": cpu seconds, "t":
  time}``). Two samples in a row give the share of its one core the master used between
  them: every order and job of every process runs its Redis commands there, so that share
  is how close the whole deployment is to its ceiling (docs/production.md). Anyone may call
  sample() as often as they like (the workers' heartbeat threads, the console's overview):
  the first caller of a slot claims it (HSETNX ``<slot>:claim``) and writes it; the others
  pay one command, and a process that already tried a slot pays none;
- enqueue 503s, per minute, field ``503`` of the same hash, counted by the web process that
  answered them (enqueue_refused()). A 503 because Redis did not answer cannot be counted
  in Redis then: it is kept in this process and added at its next successful write.

Every key expires after RETENTION seconds (two hours), as the per-minute counters do.
"""
import collections
import json
import logging
import threading
import time
import weakref

import redis

from foodapp import jobs
from foodapp.queues import describe as describe_queues

SERIES_PREFIX = "foodapp:series:"
SLOT_SECONDS = 10
SLOTS_PER_MINUTE = 60 // SLOT_SECONDS
RETENTION = 7200
#: The most minutes read() returns (the keys hold two hours).
MAX_MINUTES = 120
FIELD_503 = "503"

log = logging.getLogger(__name__)

# The slot each Redis client (process) last tried to sample: it tries each slot once.
_tried = weakref.WeakKeyDictionary()
# Enqueue 503s not yet in Redis: minute -> count. Bounded: MAX_MINUTES minutes at most.
_pending = collections.Counter()
_pending_lock = threading.Lock()


def series_key(minute):
    return f"{SERIES_PREFIX}{minute}"


def sample(broker, now=None):
    """Record this 10-second slot's queue depths, latencies and live workers, unless some
    process already did (or this one already tried). True if this call wrote the sample.

    Never raises for Redis errors (a heartbeat thread or a page calls it in passing): a
    slot that could not be written is a gap in the charts.
    """
    client = broker.client
    now = time.time() if now is None else now
    slot = int(now // SLOT_SECONDS)
    try:
        if _tried.get(client) == slot:
            return False
        _tried[client] = slot
    except TypeError:  # a client that cannot be weakly referenced: no memo
        pass
    minute, field = slot // SLOTS_PER_MINUTE, str(slot % SLOTS_PER_MINUTE)
    key = series_key(minute)
    try:
        if not client.hsetnx(key, f"{field}:claim", 1):
            return False
        queues = describe_queues(broker)
        timeout_ms = broker.settings.workers_heartbeat_timeout * 1000
        workers = client.zcount(f"{broker.namespace}:__heartbeats__", now * 1000 - timeout_ms, "+inf")
        value = {"w": workers,
                 "q": {queue["name"]: [queue["queued"], queue.get("latency_seconds")] for queue in queues},
                 "c": round(redis_cpu_seconds(client.info("cpu")), 6), "t": round(now, 3)}
        with client.pipeline(transaction=False) as pipe:
            pipe.hset(key, field, json.dumps(value, separators=(",", ":")))
            pipe.expire(key, RETENTION)
            pipe.execute()
        return True
    except redis.RedisError as error:
        log.debug("no series sample for slot %s: %s", slot, error)
        return False


def redis_cpu_seconds(cpu):
    """The CPU seconds a Redis server's main thread has used, user and system, from its
    ``INFO cpu`` (the whole process's where the server does not tell them apart)."""
    if "used_cpu_user_main_thread" in cpu:
        return float(cpu["used_cpu_user_main_thread"]) + float(cpu.get("used_cpu_sys_main_thread", 0))
    return float(cpu.get("used_cpu_user", 0)) + float(cpu.get("used_cpu_sys", 0))


#: Two samples further apart than this (s) give no CPU share: a gap in the chart, not an
#: average over the gap drawn as one slot.
CPU_SAMPLES_APART = 3 * SLOT_SECONDS


def cpu_share(used, seconds):
    """The share of one core (%) of ``used`` CPU seconds over ``seconds``, or None: no time
    between the readings, or a counter that went back (another server: a failover, a restart)."""
    if seconds <= 0 or used < 0:
        return None
    return used / seconds * 100


def _cpu_percent(before, after):
    """The share of one core (%) the master used between two samples, or None: a sample
    missing or without a reading, too far apart, or cpu_share's None."""
    if not before or not after or "c" not in before or "c" not in after:
        return None
    seconds = after["t"] - before["t"]
    share = cpu_share(after["c"] - before["c"], seconds) if seconds <= CPU_SAMPLES_APART else None
    return None if share is None else round(share, 2)


def enqueue_refused(client, redis_answered, now=None):
    """Count one enqueue answered 503. ``redis_answered``: Redis was reached (a replica
    acknowledgement timed out, say), so the count goes there now, with any kept earlier;
    otherwise it is kept in this process until the next successful write."""
    minute = int((time.time() if now is None else now) // 60)
    with _pending_lock:
        _pending[minute] += 1
        _trim_pending(minute)
    if redis_answered:
        flush_refused(client)


def _trim_pending(current):
    for minute in [m for m in _pending if m <= current - MAX_MINUTES]:
        del _pending[minute]


def flush_refused(client):
    """Add the 503s kept in this process to Redis. No command at all when there are none
    (the common case: called after every successful enqueue). Never raises."""
    if not _pending:
        return
    with _pending_lock:
        counts = dict(_pending)
        _pending.clear()
    try:
        with client.pipeline(transaction=False) as pipe:
            for minute, count in counts.items():
                pipe.hincrby(series_key(minute), FIELD_503, count)
                pipe.expire(series_key(minute), RETENTION)
            pipe.execute()
    except redis.RedisError as error:
        log.debug("enqueue 503 counts kept for later: %s", error)
        with _pending_lock:
            _pending.update(counts)
            _trim_pending(int(time.time() // 60))


def pending_refused():
    """How many 503s this process still holds (not yet in Redis)."""
    with _pending_lock:
        return sum(_pending.values())


def check_minutes(value, default=60):
    """The ``minutes`` a caller asked for, as an int in 1..MAX_MINUTES; ValueError otherwise."""
    if value is None or value == "":
        return default
    try:
        minutes = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"minutes must be a whole number from 1 to {MAX_MINUTES}, not {value!r}") from None
    if not 1 <= minutes <= MAX_MINUTES:
        raise ValueError(f"minutes must be from 1 to {MAX_MINUTES} (the series are kept two hours), not {minutes}")
    return minutes


def _outcome_counts(raw):
    """{outcome: count} summed over queues, from one per-minute hash."""
    totals = collections.Counter()
    for field, count in raw.items():
        _, _, outcome = field.decode().rpartition(":")
        try:
            totals[outcome] += int(float(count))
        except ValueError:
            continue
    return totals


def read(client, minutes=60, now=None):
    """The charts' data for the last ``minutes`` (1..MAX_MINUTES): 2 commands per minute, in
    one pipeline.

    ``rates``: per minute, jobs processed (done, failed or dead), failed (failed or dead)
    and retried, per second (the current minute over the seconds it has had);
    ``enqueue_503``: per minute, the 503s answered; ``samples``: per 10-second slot, live
    workers, depth and latency per queue, and the share of one core (%) the Redis master
    used since the sample before (None where no sample was taken, or none was taken in the
    30 s before it to compare with). Times are epoch seconds: a minute's or slot's start.
    """
    minutes = check_minutes(minutes)
    now = time.time() if now is None else now
    current = int(now // 60)
    first = current - minutes + 1
    with client.pipeline(transaction=False) as pipe:
        for minute in range(first, current + 1):
            pipe.hgetall(f"{jobs.MINUTE_PREFIX}{minute}")
            pipe.hgetall(series_key(minute))
        replies = pipe.execute()

    rates = {"step_seconds": 60, "times": [], "processed": [], "failed": [], "retried": []}
    refused = {"step_seconds": 60, "times": [], "counts": []}
    samples = {"step_seconds": SLOT_SECONDS, "times": [], "workers": [], "depth": {}, "latency": {},
               "redis_cpu_percent": []}
    slots = []
    for offset in range(minutes):
        minute = first + offset
        counts, stored = replies[2 * offset], replies[2 * offset + 1]
        seconds = 60 if minute < current else max(now - minute * 60, 10)
        totals = _outcome_counts(counts)
        rates["times"].append(minute * 60)
        rates["processed"].append(round((totals["done"] + totals["failed"] + totals["dead"]) / seconds, 4))
        rates["failed"].append(round((totals["failed"] + totals["dead"]) / seconds, 4))
        rates["retried"].append(round(totals["retried"] / seconds, 4))
        refused["times"].append(minute * 60)
        refused["counts"].append(int(stored.get(FIELD_503.encode(), 0)))
        for index in range(SLOTS_PER_MINUTE):
            start = minute * 60 + index * SLOT_SECONDS
            if start > now:
                break
            raw = stored.get(str(index).encode())
            try:
                slots.append((start, json.loads(raw) if raw else None))
            except ValueError:
                slots.append((start, None))

    names = sorted({name for _, value in slots if value for name in value.get("q", {})})
    for name in names:
        samples["depth"][name], samples["latency"][name] = [], []
    before = None
    for start, value in slots:
        samples["times"].append(start)
        samples["workers"].append(value.get("w") if value else None)
        samples["redis_cpu_percent"].append(_cpu_percent(before, value))
        before = value or before  # over one missed slot, the sample before it (CPU_SAMPLES_APART)
        queues = (value or {}).get("q", {})
        for name in names:
            depth, latency = queues.get(name, (None, None))
            samples["depth"][name].append(depth)
            samples["latency"][name].append(latency)
    return {"minutes": minutes, "now": round(now, 3), "rates": rates, "enqueue_503": refused, "samples": samples}
