"""The console's overview (/ops, and its JSON: /ops/api/overview, /ops/api/series): HTML,
escaped, kept live by the page's scripts (fetch, never a page reload) and readable without
them. The jobs' pages (/ops/jobs, /ops/jobs/<id>) are foodapp/views/search.py."""
from jinja2 import Environment, PackageLoader, select_autoescape
from pyramid.csrf import get_csrf_token
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.response import Response
from pyramid.view import view_config

from foodapp import deadletters, series
from foodapp.csrf import check_post
from foodapp.ops import human_bytes, overview, per_minute
from foodapp.security import audit
from foodapp.views import json_error, json_response

_templates = Environment(loader=PackageLoader("foodapp", "templates"), autoescape=select_autoescape(["html"]))


def render(request, template, status=200, **context):
    """A console page from its template; every page gets the dashboard's prefix and its own
    path (the navigation marks where you are)."""
    context.setdefault("path", request.path)
    html = _templates.get_template(template).render(dashboard=request.registry.foodapp.dashboard_prefix, **context)
    return Response(html, status=status, content_type="text/html", charset="utf-8")


def message(request, status, title, text):
    return render(request, "message.html", status=status, title=title, text=text)


@view_config(route_name="ops", request_method="GET")
def ops(request):
    """The overview: what the JSON below gives, rendered (so it reads without scripts);
    overview.js then keeps it live and draws the charts."""
    broker = request.registry.broker
    return render(request, "ops.html", title="Operations", csrf_token=get_csrf_token(request),
                  human_bytes=human_bytes, minutes=per_minute(broker.client), **overview(broker))


@view_config(route_name="ops_api_overview", request_method="GET")
def api_overview(request):
    """Redis's readiness and topology, failovers, memory, the audit tail, the queues and the
    workers' counts. Also takes this 10-second slot's chart sample (if nobody did) and adds
    this process's uncounted enqueue 503s, so the charts fill while someone looks."""
    broker = request.registry.broker
    series.flush_refused(broker.client)
    series.sample(broker)
    return json_response(200, overview(broker))


@view_config(route_name="ops_api_series", request_method="GET")
def api_series(request):
    """The charts' data for the last ``minutes`` (default 60, at most 120): series.read()."""
    try:
        minutes = series.check_minutes(request.GET.get("minutes"))
    except ValueError as error:
        return json_error(400, "bad_minutes", f"{error}: e.g. /ops/api/series?minutes=60")
    return json_response(200, series.read(request.registry.broker.client, minutes))


@view_config(route_name="ops_requeue", request_method="POST")
def requeue_dead(request):
    check_post(request)
    queue = request.matchdict["queue"]
    if queue not in request.registry.broker.queues:
        return message(request, 404, "No such queue", f"There is no queue {queue!r}.")
    count = deadletters.requeue_all(request.registry.broker, queue)
    audit(request.registry.broker.client, request.environ, "requeue all dead letters", queue=queue, count=count)
    return HTTPSeeOther(request.route_url("ops"))


def includeme(config):
    # The console's CSS and scripts: files, never inline (the Content-Security-Policy).
    # Under /ops, so behind the same login; no caching across deploys (cache_max_age 0).
    config.add_static_view("ops/static", "foodapp:static/ops", cache_max_age=0)
    config.add_route("ops", "/ops")
    config.add_route("ops_api_overview", "/ops/api/overview")
    config.add_route("ops_api_series", "/ops/api/series")
    # /ops/jobs and /ops/jobs/{job_id}: foodapp/views/search.py.
    config.add_route("ops_requeue", "/ops/queues/{queue}/requeue-dead")
