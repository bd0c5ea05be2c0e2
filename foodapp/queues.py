"""Queue control: pause, resume and purge a queue, and describe every queue with its latency.

A pause is one field of one Redis hash (``foodapp:paused``: queue -> JSON ``{by, at}``), so
every worker on every host sees the same thing. Workers read it in their fetch itself
(foodapp/lua/fetch.lua: no extra round trip per job) and, when busy and not fetching, at
most once a second (FifoConsumer); a paused queue still takes orders, which wait in it, in
order, until it is resumed. Pause and resume push wake tokens, so that idle workers
blocked on the queue's wake list notice at once rather than at their next idle timeout.

Every read here is O(1) Redis commands per queue, pipelined: no KEYS, no scan of the jobs.
"""
import json
import time

from foodapp import jobs

#: Paused queues: queue name -> JSON {"by": who, "at": epoch seconds}.
PAUSED = "foodapp:paused"
#: Most jobs one call of purge.lua removes: a 100,000-job purge is 200 short scripts, never
#: one that holds Redis for seconds (other clients wait while a script runs).
PURGE_CHUNK = 500
#: Most wake tokens a pause or resume pushes (enqueue.lua keeps the wake list this short).
MAX_WAKE = 100

_purge_scripts = {}


class UnknownQueue(ValueError):
    """No such queue is declared."""

    def __init__(self, queue, known):
        super().__init__(f"there is no queue {queue!r}; the queues are {', '.join(sorted(known))}")
        self.queue = queue


def _check(broker, queue):
    if queue not in broker.queues:
        raise UnknownQueue(queue, broker.queues)


def decode_pause(raw):
    """The paused hash's value as {"by", "at" (ISO 8601)}, or None."""
    if raw is None:
        return None
    entry = json.loads(raw)
    return {"by": entry.get("by", "unknown"), "at": jobs.iso(entry.get("at", 0))}


def _wake(broker, pipe, queue):
    """Push one wake token per worker (at most MAX_WAKE) onto the queue's wake list: every
    worker blocked on it (FifoConsumer._wake_and_fetch) returns and fetches, and its fetch
    says whether the queue is paused."""
    workers = broker.client.zcard(f"{broker.namespace}:__heartbeats__")
    wake = f"{broker.namespace}:{queue}.wake"
    pipe.rpush(wake, *([1] * max(1, min(workers, MAX_WAKE))))
    pipe.ltrim(wake, -MAX_WAKE, -1)


def pause(broker, queue, by):
    """Pause ``queue``: workers stop taking its jobs (those running finish); orders are still
    accepted and wait. Pausing a paused queue keeps who paused it first. Returns {by, at}."""
    _check(broker, queue)
    entry = json.dumps({"by": by, "at": jobs.now()}, ensure_ascii=False)
    with broker.client.pipeline(transaction=False) as pipe:
        pipe.hsetnx(PAUSED, queue, entry)
        pipe.hget(PAUSED, queue)
        _wake(broker, pipe, queue)
        _, stored, *_ = pipe.execute()
    return decode_pause(stored)


def resume(broker, queue, by):
    """Resume ``queue``: workers take its jobs again, oldest first. Returns the pause it ended
    ({by, at}), or None if it was not paused. ``by`` is for the caller's audit entry."""
    _check(broker, queue)
    with broker.client.pipeline(transaction=False) as pipe:
        pipe.hget(PAUSED, queue)
        pipe.hdel(PAUSED, queue)
        _wake(broker, pipe, queue)
        was, *_ = pipe.execute()
    return decode_pause(was)


def paused(broker):
    """{queue: {"by", "at"}} of every paused queue."""
    return {queue.decode(): decode_pause(raw) for queue, raw in broker.client.hgetall(PAUSED).items()}


def purge(broker, queue, chunk=PURGE_CHUNK):
    """Remove every job waiting in ``queue``'s list, and mark each ``cancelled`` (event
    "purged") in its status record. Returns how many were removed.

    Not purged: delayed jobs (scheduled, or waiting for a retry: the delay queue), dead
    letters, and jobs a worker has already taken (running, or fetched and not yet started:
    pause the queue first and workers give those back). Each chunk is one atomic script;
    the purge ends at the job that was last in the queue when it began (jobs enqueued
    meanwhile stay), or after as many jobs as the queue held then.
    """
    _check(broker, queue)
    client, key = broker.client, f"{broker.namespace}:{queue}"
    script = _purge_scripts.get(client)
    if script is None:
        script = _purge_scripts[client] = client.register_script(jobs.composed("purge"))
    with client.pipeline(transaction=False) as pipe:
        pipe.llen(key)
        pipe.lrange(key, -1, -1)
        length, last = pipe.execute()
    if not length or not last:
        return 0
    event = jobs.encode({"event": "purged", "at": jobs.now()})
    removed = 0
    for _ in range(length // chunk + 1):  # bounded: each call removes up to chunk, or ends
        taken, done = script(keys=[key, f"{key}.msgs", jobs.STATUS_PREFIX],
                             args=[min(chunk, length - removed), last[0], broker.settings.jobs_status_ttl, event,
                                   jobs.now()])
        removed += taken
        if done or removed >= length:
            break
    return removed


def head_waits(broker, names):
    """{queue: seconds its head job has waited} (0 for an empty queue): three pipelined
    round trips at most (head ids, their messages, their timelines' last events), O(1)
    commands per queue.

    A job waits from its last (re)queueing: the last event of its timeline (queued, due,
    requeued...), else the time its message was made.
    """
    ns, client = broker.namespace, broker.client
    with client.pipeline(transaction=False) as pipe:
        for queue in names:
            pipe.lrange(f"{ns}:{queue}", 0, 0)
        heads = {queue: head[0] for queue, head in zip(names, pipe.execute()) if head}
    messages = {}
    if heads:
        with client.pipeline(transaction=False) as pipe:
            for queue, rid in heads.items():
                pipe.hget(f"{ns}:{queue}.msgs", rid)
            for queue, body in zip(heads, pipe.execute()):
                try:
                    messages[queue] = json.loads(body) if body else None
                except ValueError:
                    messages[queue] = None
    messages = {queue: message for queue, message in messages.items() if message and "message_id" in message}
    lasts = {}
    if messages:
        with client.pipeline(transaction=False) as pipe:
            for message in messages.values():
                pipe.lrange(jobs.events_key(message["message_id"]), -1, -1)
            lasts = dict(zip(messages, pipe.execute()))
    now, waits = time.time(), {}
    for queue in names:
        message, last = messages.get(queue), lasts.get(queue)
        if not message:
            waits[queue] = 0.0
            continue
        since = message.get("message_timestamp", now * 1000) / 1000
        if last:
            try:
                since = float(json.loads(last[0])["at"])
            except (ValueError, KeyError, TypeError):
                pass
        waits[queue] = round(max(0.0, now - since), 3)
    return waits


def describe(broker):
    """Every queue: queued, delayed and dead jobs, whether (and by whom) it is paused, and
    how long the job at its head has waited (``latency_seconds``, 0 when empty)."""
    ns, client = broker.namespace, broker.client
    names = sorted(broker.queues)
    with client.pipeline(transaction=False) as pipe:
        for queue in names:
            pipe.llen(f"{ns}:{queue}")
            pipe.hlen(f"{ns}:{queue}.DQ.msgs")
            pipe.zcard(f"{ns}:{queue}.XQ")
        pipe.hgetall(PAUSED)
        *counts, pauses = pipe.execute()
    pauses = {queue.decode(): raw for queue, raw in pauses.items()}
    waits = head_waits(broker, names)
    return [{"name": queue, "queued": counts[i * 3], "delayed": counts[i * 3 + 1], "dead": counts[i * 3 + 2],
             "paused": decode_pause(pauses.get(queue)), "latency_seconds": waits[queue]}
            for i, queue in enumerate(names)]
