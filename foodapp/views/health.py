"""Liveness (/healthz: the process answers) and readiness (/readyz: Redis takes jobs)."""
import threading
from concurrent.futures import ThreadPoolExecutor

import redis
from pyramid.view import view_config

from foodapp.broker import describe
from foodapp.security import DETAIL_HINT, sees_detail
from foodapp.topology import sentinel_views, topology
from foodapp.views import json_response


@view_config(route_name="healthz", request_method="GET")
def healthz(request):
    return json_response(200, {"status": "alive"})


@view_config(route_name="readyz", request_method="GET")
def readyz(request):
    """Readiness; its details (addresses, errors) only for the internal network or the token."""
    response = readiness(request)
    if sees_detail(request):
        return response
    ready = response.status_code == 200
    bare = json_response(response.status_code, {
        "ready": ready,
        "message": ("ready: Redis takes jobs" if ready else "not ready: Redis does not take jobs now") + f"; {DETAIL_HINT}",
    })
    if "Retry-After" in response.headers:
        bare.headers["Retry-After"] = response.headers["Retry-After"]
    return bare


#: How long /readyz waits for the master (s). A master on a host gone silently makes each
#: command wait ``redis.socket_timeout`` (its connection too); the front proxy's health
#: check gives /readyz 3 s (deploy/haproxy: timeout check), and asking the Sentinels after
#: it takes at most 0.5 s more (foodapp/topology.py).
MASTER_DEADLINE = 1.5

_asking = None
_asking_lock = threading.Lock()


def _topology_within(request, deadline=MASTER_DEADLINE):
    """topology(), or redis.TimeoutError once ``deadline`` passes (the asking goes on in
    its thread, for at most the socket timeout)."""
    global _asking
    with _asking_lock:
        if _asking is None:
            _asking = ThreadPoolExecutor(4, thread_name_prefix="foodapp-readyz")
    broker = request.registry.broker
    future = _asking.submit(topology, broker.client, request.registry.foodapp, broker.replicas.required())
    try:
        return future.result(timeout=deadline)
    except TimeoutError:
        raise redis.TimeoutError(f"no answer within {deadline:g} s") from None


def readiness(request):
    """200 when an order sent now gets a 202: Redis takes jobs, or a failover is under way
    that this process can ride out (it holds each order until the new master takes it, for
    up to enqueue.retry_seconds), or the master lacks a replica that the Sentinels will
    judge down or see come back (replica_awaited). A front proxy that took every web
    process out of service then would answer clients with errors instead. Answered within
    about 2 s whatever the master does (MASTER_DEADLINE)."""
    settings = request.registry.foodapp
    retry_after = {"Retry-After": str(settings.enqueue_retry_after_seconds)}
    try:
        ready, reason, seen = _topology_within(request)
    except redis.RedisError as error:
        reason = f"Redis ({describe(settings)}) did not answer: {error}"
        failover = failover_under_way(settings, reason)
        if failover:
            return json_response(200, failover)
        return json_response(503, {"ready": False, "reason": reason}, **retry_after)
    if not ready and seen.get("role") != "master":
        failover = failover_under_way(settings, reason, seen)
        if failover:
            return json_response(200, failover)
    elif not ready and settings.redis_sentinels:
        awaited = replica_awaited(settings, reason, seen)
        if awaited:
            return json_response(200, awaited)
    return json_response(200 if ready else 503, {"ready": ready, "reason": reason, "redis": seen},
                         **({} if ready else retry_after))


def failover_under_way(settings, reason, seen=None):
    """The answer of a process that can wait for a new master, or None.

    The master does not answer (or is no longer a master), but a majority of the Sentinels
    does: they are the ones who promote a replica, and each order is held until one is.
    """
    if not settings.redis_sentinels:
        return None
    sentinels = sentinel_views(settings)
    reachable = sum(1 for sentinel in sentinels if sentinel["reachable"])
    if reachable <= len(sentinels) // 2:
        return None
    return {
        "ready": True,
        "reason": f"failing over: {reason}; {reachable} of {len(sentinels)} Sentinels answer, so orders are "
                  f"held until they promote a new master (up to {settings.enqueue_retry_seconds:g} s)",
        "redis": {**(seen or {}), "sentinels": sentinels, "failing_over": True},
    }


def replica_awaited(settings, reason, seen):
    """The answer of a process whose master has fewer replicas online than an order must
    reach, when a majority of the Sentinels name that master: a replica that died is judged
    down by them within down-after, and orders then go without it; one that reconnects is
    waited for again. Each order is held meanwhile (for up to enqueue.retry_seconds), so a
    replica's host lost does not take the only host left out of the proxy. Else None."""
    sentinels = seen.get("sentinels", [])
    agreeing = sum(1 for sentinel in sentinels if sentinel.get("master") == seen.get("master"))
    if agreeing <= len(sentinels) // 2:
        return None
    return {
        "ready": True,
        "reason": f"waiting for a replica: {reason}; {agreeing} of {len(sentinels)} Sentinels answer and name this "
                  "master, so orders are held until the replica is back or they judge it down (up to "
                  f"{settings.enqueue_retry_seconds:g} s)",
        "redis": {**seen, "waiting_for_replica": True},
    }
