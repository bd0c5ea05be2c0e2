"""The console's queue control, as JSON (the /ops page calls it; so can anyone with the login).

    GET  /ops/api/queues                  every queue: queued, delayed, dead, paused, latency
    POST /ops/api/queues/{queue}/pause    workers stop taking its jobs within a second
    POST /ops/api/queues/{queue}/resume   they take them again, oldest first
    POST /ops/api/queues/{queue}/purge    body {"confirm": "<queue>"}: its waiting jobs are
                                          removed and marked cancelled

A paused queue still takes orders (202); they wait in it, in order. The POSTs need the
page's CSRF token (header ``X-CSRF-Token``) and come from its origin; each is written to the
audit log with who did it (the login's user, or "anonymous" where there is no login).
/ops is behind the production login.
"""
import json

from pyramid.view import view_config

from foodapp import queues
from foodapp.csrf import check_post
from foodapp.security import audit
from foodapp.views import json_error, json_response

NOT_PURGED = ("delayed jobs (scheduled, or waiting for a retry), dead letters, and jobs a worker had already "
              "taken were not purged; pause the queue first and workers give back what they took but did not start")


def _who(request):
    return request.environ.get("REMOTE_USER") or "anonymous"


def _unknown(request, queue):
    known = ", ".join(sorted(request.registry.broker.queues))
    return json_error(404, "no_such_queue", f"there is no queue {queue!r}; the queues are {known}")


@view_config(route_name="ops_queues_api", request_method="GET")
def listing(request):
    return json_response(200, {"queues": queues.describe(request.registry.broker)}, **{"Cache-Control": "no-store"})


@view_config(route_name="ops_queue_action", request_method="POST")
def action(request):
    check_post(request)
    broker, queue, verb = request.registry.broker, request.matchdict["queue"], request.matchdict["action"]
    if queue not in broker.queues:
        return _unknown(request, queue)
    who = _who(request)
    if verb == "pause":
        pause = queues.pause(broker, queue, who)
        audit(broker.client, request.environ, "pause queue", queue=queue)
        return json_response(200, {"queue": queue, "paused": pause,
                                   "message": f"queue {queue} is paused by {pause['by']}: workers take none of its "
                                              "jobs (running ones finish); orders are still accepted and wait"})
    if verb == "resume":
        was = queues.resume(broker, queue, who)
        audit(broker.client, request.environ, "resume queue", queue=queue, was_paused=was is not None)
        return json_response(200, {"queue": queue, "paused": None, "was_paused": was,
                                   "message": f"queue {queue} is running: workers take its jobs, oldest first"
                                   if was else f"queue {queue} was not paused: nothing changed"})
    try:
        body = json.loads(request.body or b"null")
    except ValueError:
        body = None
    if not isinstance(body, dict) or body.get("confirm") != queue:
        return json_error(400, "confirm_purge",
                          f"purging removes every job waiting in {queue} and cannot be undone: to confirm, send the "
                          f"JSON body {json.dumps({'confirm': queue})} (the queue's name) with Content-Type "
                          "application/json")
    count = queues.purge(broker, queue)
    audit(broker.client, request.environ, "purge queue", queue=queue, count=count)
    return json_response(200, {"queue": queue, "purged": count, "state": "cancelled", "not_purged": NOT_PURGED,
                               "message": f"{count} job(s) removed from {queue} and marked cancelled; {NOT_PURGED}"})


def includeme(config):
    config.add_route("ops_queues_api", "/ops/api/queues")
    config.add_route("ops_queue_action", "/ops/api/queues/{queue}/{action:pause|resume|purge}")
