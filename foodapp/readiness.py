"""Whether an order sent now gets a 202, as /readyz and the ops overview say it.

Ready: Redis takes jobs; or a failover is under way that this process can ride out (the
master does not answer or is no longer the master, and a majority of the Sentinels does:
they promote a replica, and each order is held until one is, for up to
``enqueue.retry_seconds``); or the master lacks a replica that a majority of the Sentinels,
naming this master, will judge down or see come back (orders are held meanwhile). A front
proxy that took every web process out of service then would answer clients with errors.

The master gets MASTER_DEADLINE to answer: a master on a host gone silently makes each
command wait ``redis.socket_timeout`` (its connection too), and the front proxy's health
check gives /readyz 3 s (deploy/haproxy: timeout check); asking the Sentinels after it
takes at most 0.5 s more (foodapp/topology.py).
"""
import threading
from concurrent.futures import ThreadPoolExecutor

import redis

from foodapp.broker import describe
from foodapp.topology import sentinel_views, topology

#: How long the master has to answer (s).
MASTER_DEADLINE = 1.5

_asking = None
_asking_lock = threading.Lock()


def readiness(broker, deadline=MASTER_DEADLINE):
    """(ready, reason, what was seen of Redis: {} when the master did not answer)."""
    settings = broker.settings
    try:
        ready, reason, seen = _topology_within(broker, deadline)
    except redis.RedisError as error:
        reason = f"Redis ({describe(settings)}) did not answer: {error}"
        return failover_under_way(settings, reason) or (False, reason, {})
    if not ready and seen.get("role") != "master":
        return failover_under_way(settings, reason, seen) or (False, reason, seen)
    if not ready and settings.redis_sentinels:
        return replica_awaited(settings, reason, seen) or (False, reason, seen)
    return ready, reason, seen


def _topology_within(broker, deadline):
    """topology(), or redis.TimeoutError once ``deadline`` passes (the asking goes on in
    its thread, for at most the socket timeout)."""
    global _asking
    with _asking_lock:
        if _asking is None:
            _asking = ThreadPoolExecutor(4, thread_name_prefix="foodapp-readiness")
    future = _asking.submit(topology, broker.client, broker.settings, broker.replicas.required())
    try:
        return future.result(timeout=deadline)
    except TimeoutError:
        raise redis.TimeoutError(f"no answer within {deadline:g} s") from None


def failover_under_way(settings, reason, seen=None):
    """Ready while the master does not answer (or is no longer a master) but a majority of
    the Sentinels does; else None."""
    if not settings.redis_sentinels:
        return None
    sentinels = sentinel_views(settings)
    reachable = sum(1 for sentinel in sentinels if sentinel["reachable"])
    if reachable <= len(sentinels) // 2:
        return None
    return (True, f"failing over: {reason}; {reachable} of {len(sentinels)} Sentinels answer, so orders are held "
                  f"until they promote a new master (up to {settings.enqueue_retry_seconds:g} s)",
            {**(seen or {}), "sentinels": sentinels, "failing_over": True})


def replica_awaited(settings, reason, seen):
    """Ready while the master has fewer replicas online than an order must reach and a
    majority of the Sentinels name that master: a replica that died is judged down by them
    within down-after, and orders then go without it; one that reconnects is waited for
    again. Else None."""
    sentinels = seen.get("sentinels", [])
    agreeing = sum(1 for sentinel in sentinels if sentinel.get("master") == seen.get("master"))
    if agreeing <= len(sentinels) // 2:
        return None
    return (True, f"waiting for a replica: {reason}; {agreeing} of {len(sentinels)} Sentinels answer and name this "
                  "master, so orders are held until the replica is back or they judge it down (up to "
                  f"{settings.enqueue_retry_seconds:g} s)",
            {**seen, "waiting_for_replica": True})
