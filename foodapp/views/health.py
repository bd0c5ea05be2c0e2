"""Liveness (/healthz: the process answers) and readiness (/readyz: Redis takes jobs)."""
import redis
from pyramid.view import view_config

from foodapp.broker import describe
from foodapp.topology import topology
from foodapp.views import json_response


@view_config(route_name="healthz", request_method="GET")
def healthz(request):
    return json_response(200, {"status": "alive"})


@view_config(route_name="readyz", request_method="GET")
def readyz(request):
    settings = request.registry.foodapp
    try:
        ready, reason, seen = topology(request.registry.broker.client, settings, request.registry.broker.replicas.required())
    except redis.RedisError as error:
        return json_response(
            503,
            {"ready": False, "reason": f"Redis ({describe(settings)}) did not answer: {error}"},
            **{"Retry-After": str(settings.enqueue_retry_after_seconds)},
        )
    return json_response(
        200 if ready else 503, {"ready": ready, "reason": reason, "redis": seen},
        **({} if ready else {"Retry-After": str(settings.enqueue_retry_after_seconds)}),
    )
