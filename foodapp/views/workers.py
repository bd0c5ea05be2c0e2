"""The console's Workers page (/ops/workers) and its JSON API.

    GET  /ops/workers                                   the page (HTML; readable without scripts)
    GET  /ops/api/workers                               every worker process and this host's programs
    POST /ops/api/workers/{program}/stop|start|restart  through this host's supervisord

``program`` is supervisord's name for it ("workers:workers_00"). Only the groups of
``supervisor.groups`` are controlled (never the web processes or Redis), and only on this
host's supervisord (``supervisor.url``): the page offers buttons for the processes it can
reach. The POSTs need the page's CSRF token (header ``X-CSRF-Token``) and come from its
origin; each is written to the audit log. /ops is behind the production login.
"""
import logging

import redis
from pyramid.csrf import get_csrf_token
from pyramid.view import view_config

from foodapp import processes
from foodapp.csrf import check_post
from foodapp.ops import human_bytes
from foodapp.security import audit
from foodapp.supervisors import STOPPED_STATES, Supervisor, SupervisorError
from foodapp.views import json_error, json_response
from foodapp.views.ops import render

log = logging.getLogger(__name__)

ACTIONS = ("stop", "start", "restart")
#: What each action leaves a program in when it is done (else it is still under way: 202).
SETTLED = {"stop": STOPPED_STATES, "start": {"RUNNING"}, "restart": {"RUNNING"}}

def supervisor(request):
    return Supervisor.from_settings(request.registry.foodapp)


def duration(seconds):
    """3 d 4 h, 2 h 5 min, 4 min 10 s, 12 s: an uptime as people read it."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    for unit, size, smaller, small_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if seconds >= size:
            rest = (seconds % size) // small_size
            return f"{seconds // size} {unit}" + (f" {rest} {smaller}" if rest else "")
    return f"{seconds} s"


@view_config(route_name="ops_workers", request_method="GET")
def page(request):
    workers = processes.overview(request.registry.broker, supervisor(request))
    return render(request, "workers.html", title="Workers", csrf_token=get_csrf_token(request),
                  human_bytes=human_bytes, duration=duration, **workers)


@view_config(route_name="ops_workers_api", request_method="GET")
def listing(request):
    return json_response(200, processes.overview(request.registry.broker, supervisor(request)),
                         **{"Cache-Control": "no-store"})


@view_config(route_name="ops_worker_action", request_method="POST")
def action(request):
    check_post(request)
    name, verb = request.matchdict["program"], request.matchdict["action"]
    settings, client = request.registry.foodapp, request.registry.broker.client
    control = supervisor(request)
    groups = settings.supervisor_groups.split()
    try:
        programs = processes.controllable(control.processes(), groups)
        if name not in {program["name"] for program in programs}:
            known = ", ".join(program["name"] for program in programs) or "none"
            return json_error(404, "no_such_program",
                              f"no worker program {name!r} under supervisord at {control.url} (it controls the groups "
                              f"{', '.join(groups)} of this host; its programs: {known}): pick one from /ops/workers")
        program = getattr(control, verb)(name)
    except SupervisorError as error:
        if error.status != 404:
            _audit(client, request, verb, name, outcome=f"failed: {error}")
        return json_error(error.status, error.error, str(error))
    done = program["state"] in SETTLED[verb]
    _audit(client, request, verb, name, outcome=program["state"])
    if done:
        message = f"{name} is {program['state']}"
    elif verb == "restart" and program["state"] not in ("STARTING", "BACKOFF"):
        message = (f"{name} is still {program['state']}: a stopping worker finishes or hands back its jobs first; "
                   "start it once the page shows it STOPPED")
    else:
        message = f"{name} is {program['state']}: under way, the page shows when it is done"
    return json_response(200 if done else 202, {"action": verb, "program": program, "done": done, "message": message})


def _audit(client, request, verb, name, outcome):
    try:
        audit(client, request.environ, f"{verb} worker program", program=name, host=_host(), outcome=outcome)
    except redis.RedisError as error:
        log.warning("could not write the audit entry for %s of %s (%s): %s", verb, name, outcome, error)


def _host():
    import socket

    return socket.gethostname()


def includeme(config):
    config.add_route("ops_workers", "/ops/workers")
    config.add_route("ops_workers_api", "/ops/api/workers")
    config.add_route("ops_worker_action", "/ops/api/workers/{program}/{action:stop|start|restart}")
