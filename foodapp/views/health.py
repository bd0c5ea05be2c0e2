"""Liveness (/healthz: the process answers) and readiness (/readyz: Redis takes jobs)."""
from pyramid.view import view_config

from foodapp.readiness import readiness as ready_now
from foodapp.security import DETAIL_HINT, sees_detail
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
    """200 when an order sent now gets a 202 (foodapp/readiness.py), else 503 with
    Retry-After."""
    settings = request.registry.foodapp
    ready, reason, seen = ready_now(request.registry.broker)
    body = {"ready": ready, "reason": reason, **({"redis": seen} if seen else {})}
    return json_response(200 if ready else 503, body,
                         **({} if ready else {"Retry-After": str(settings.enqueue_retry_after_seconds)}))
