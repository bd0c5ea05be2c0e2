"""Liveness (/healthz: the process answers) and readiness (/readyz: Redis takes jobs)."""
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


def readiness(request):
    """200 when an order sent now gets a 202: Redis takes jobs, or a failover is under way
    that this process can ride out (it holds each order until the new master takes it, for
    up to enqueue.retry_seconds). A front proxy that took every web process out of service
    during a failover would answer clients with errors instead."""
    settings = request.registry.foodapp
    retry_after = {"Retry-After": str(settings.enqueue_retry_after_seconds)}
    try:
        ready, reason, seen = topology(request.registry.broker.client, settings, request.registry.broker.replicas.required())
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
