"""The console's periodic jobs: /ops/periodic (HTML) and /ops/api/periodic (JSON).

Each schedule of ``periodic.jobs`` with its cron, actor, next run and last run (the job, its
state, which scheduler fired it), and the schedulers alive (foodapp-scheduler, one per host).
"Run now" (POST /ops/api/periodic/{name}/run) enqueues the schedule's job at once, outside
its ticks, with the page's CSRF token, and is written to the audit log.
"""
from pyramid.csrf import get_csrf_token
from pyramid.view import view_config

from foodapp import periodic
from foodapp.broker import EnqueueUnavailable
from foodapp.csrf import check_post
from foodapp.security import audit
from foodapp.urls import public_url
from foodapp.views import json_error, json_response
from foodapp.views.ops import render

def _overview(request):
    found = periodic.overview(request.registry.broker, request.registry.foodapp)
    for row in found["schedules"]:
        if row["last_run"]:
            row["last_run"]["status_url"] = public_url(request, "job", job_id=row["last_run"]["job_id"])
            row["last_run"]["page_url"] = f"/ops/jobs/{row['last_run']['job_id']}"
    return found


@view_config(route_name="ops_periodic", request_method="GET")
def page(request):
    return render(request, "periodic.html", title="Periodic jobs", csrf_token=get_csrf_token(request),
                  iso=periodic.iso_utc, **_overview(request))


@view_config(route_name="ops_api_periodic", request_method="GET")
def api(request):
    return json_response(200, _overview(request), **{"Cache-Control": "no-store"})


@view_config(route_name="ops_api_periodic_run", request_method="POST")
def run(request):
    # A bad or missing X-CSRF-Token, or another origin: 403 JSON (foodapp/views/errors.py).
    check_post(request)
    name = request.matchdict["name"]
    schedule = next((s for s in request.registry.foodapp.periodic_jobs if s.name == name), None)
    if schedule is None:
        known = ", ".join(s.name for s in request.registry.foodapp.periodic_jobs) or "none"
        return json_error(404, "no_such_schedule", f"there is no periodic job {name!r} in periodic.jobs "
                                                   f"(the schedules are: {known})")
    user = request.environ.get("REMOTE_USER") or "anonymous"
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (1 <= len(key) <= 255 and key.isascii() and key.isprintable()):
        return json_error(400, "bad_idempotency_key", "the Idempotency-Key header must be 1 to 255 printable ASCII "
                                                      "characters, e.g. a UUID")
    try:
        record, new = periodic.run_now(request.registry.broker, schedule, f"console ({user})", key)
    except EnqueueUnavailable as error:
        return json_error(503, "redis_unavailable", f"the job was not stored: {error.reason}; try again in "
                                                    f"{error.retry_after} s", **{"Retry-After": str(error.retry_after)})
    if new:
        audit(request.registry.broker.client, request.environ, "run periodic job now", schedule=name,
              job_id=record["job_id"])
    return json_response(202, {**record, "status_url": public_url(request, "job", job_id=record["job_id"]),
                               "replayed": not new})


def includeme(config):
    # Refuse to start with a schedule whose actor is not declared (or cannot take its
    # arguments): the same check foodapp-scheduler makes, so the console never lists one
    # the scheduler would refuse.
    periodic.check_actors(config.registry.foodapp.periodic_jobs, config.registry.broker)
    config.add_route("ops_periodic", "/ops/periodic")
    config.add_route("ops_api_periodic", "/ops/api/periodic")
    config.add_route("ops_api_periodic_run", "/ops/api/periodic/{name}/run")
