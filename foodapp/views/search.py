"""The console's jobs: search recent jobs, a job's page, and an operator's actions on jobs.

    GET  /ops/jobs                       search form and results (HTML; works without scripts);
                                         ?id=<job id> alone (the nav box) opens that job's page
    GET  /ops/jobs/{job_id}              a job's page: status, timeline, logs, result, actions
    GET  /ops/api/jobs?id=&item=&actor=&queue=&state=&since=&until=&limit=&cursor=
    GET  /ops/api/jobs/{job_id}          the job's status and its logs
    POST /ops/api/jobs/{job_id}/cancel|run-now|retry
    POST /ops/api/jobs/bulk              {"action": ..., "ids": [...]} or {"action": ..., "query": {...}}

The POSTs need the page's CSRF token (header ``X-CSRF-Token``, or the form's ``csrf_token``)
and come from the console's own origin; each is written to the audit log (one entry per
bulk action, with its count and first ids). A form POST (the pages without scripts) is
answered with a redirect back to the page, JSON otherwise. /ops is behind the production
login. See foodapp/search.py for the index, its bounds and the actions.
"""
import json
import logging

import redis
from pyramid.csrf import get_csrf_token
from pyramid.httpexceptions import HTTPSeeOther
from pyramid.view import view_config

from foodapp import joblogs, jobs, search
from foodapp.csrf import check_post
from foodapp.durable import TooFewReplicas
from foodapp.security import audit
from foodapp.urls import public_url, route_path
from foodapp.views import json_error, json_response
from foodapp.views.ops import message, render

log = logging.getLogger(__name__)

#: States a job leaves no more by itself: its page stops updating.
FINAL = ("done", "failed", "dead", "cancelled")
#: Which action applies to which states (the job page's buttons).
APPLIES = {"cancel": ("scheduled", "queued", "retrying"), "run-now": ("scheduled", "retrying"),
           "retry": ("dead", "failed")}
#: Ids an audit entry of a bulk action lists.
AUDIT_IDS = 10


def _user(request):
    return request.environ.get("REMOTE_USER") or "anonymous"


def _unavailable(error):
    if isinstance(error, TooFewReplicas):
        return json_error(503, "redis_unavailable", f"Redis cannot take this change now ({error}): try again in a "
                          "moment", **{"Retry-After": "2"})
    return json_error(503, "redis_unavailable", f"Redis did not answer ({error}); nothing was changed, or only part "
                      "of it: look at the jobs again, then try again", **{"Retry-After": "2"})


def _bad(error):
    return json_error(400, f"bad_{error.field.replace('.', '_').replace('-', '_')}", error.message)


def _is_form(request):
    return request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data")


def _audit(request, action, **details):
    try:
        audit(request.registry.broker.client, request.environ, action, **details)
    except redis.RedisError as error:
        log.warning("could not write the audit entry %r %r: %s", action, details, error)


# --- pages -------------------------------------------------------------------------------

def _choices(broker):
    return {"actors": sorted(broker.actors), "states": jobs.STATES,
            "queues": sorted(name for name in broker.queues if not name.endswith((".DQ", ".XQ")))}


def _local(epoch):
    """A time for a datetime-local field (UTC, to the second)."""
    return jobs.iso(epoch)[:19] if epoch is not None else ""


@view_config(route_name="ops_search", request_method="GET")
def jobs_page(request):
    broker = request.registry.broker
    params = {name: value for name, value in request.GET.items()}
    given = {name: value for name, value in params.items() if str(value).strip()}
    if set(given) == {"id"}:
        # The nav box: straight to the job's page.
        job_id = given["id"].strip()
        if not search.is_uuid(job_id):
            return message(request, 400, "Not a job id",
                           f"{job_id!r} is not a job id: job ids are UUIDs, as the 202 gave.")
        return HTTPSeeOther(request.application_url + route_path(request, "ops_job", job_id=job_id))
    context = dict(title="Jobs", csrf_token=get_csrf_token(request), form=params, error=None, result=None,
                   next_url=None, applies=APPLIES, max_bulk=search.MAX_BULK, **_choices(broker))
    try:
        query = search.parse_query(given, broker)
    except search.BadQuery as error:
        context["error"] = f"{error.field}: {error.message}"
        return render(request, "jobs.html", status=400, **context)
    context["form"] = {**params, "since": _local(query.since), "until": _local(query.until)}
    try:
        result = search.search(broker.client, query)
    except redis.RedisError as error:
        context["error"] = f"Redis did not answer ({error}): reload the page in a moment"
        return render(request, "jobs.html", status=503, **context)
    if result["next_cursor"]:
        from urllib.parse import urlencode

        context["next_url"] = request.path + "?" + urlencode({**query.params(), "cursor": result["next_cursor"]})
    context.update(result=result, query_params=query.params(), back=request.path_qs)
    return render(request, "jobs.html", **context)


@view_config(route_name="ops_job", request_method="GET")
def job_page(request):
    job_id = request.matchdict["job_id"]
    broker = request.registry.broker
    job = broker.jobs.get(job_id) if search.is_uuid(job_id) else None
    if job is None:
        ttl = request.registry.foodapp.jobs_status_ttl
        return message(request, 404, "No such job",
                       f"No job {job_id}: unknown, or its status expired (kept {ttl} s after its last change).")
    return render(request, "job.html", title=f"Job {job_id}", job=job, logs=joblogs.read(broker.client, job_id),
                  result_json=json.dumps(job.get("result"), indent=2, ensure_ascii=False),
                  status_url=public_url(request, "job", job_id=job_id), csrf_token=get_csrf_token(request),
                  applies=APPLIES, final=FINAL, item=search.item_of(job.get("args") or []))


# --- JSON API ----------------------------------------------------------------------------

@view_config(route_name="ops_api_jobs", request_method="GET")
def api_search(request):
    broker = request.registry.broker
    try:
        query = search.parse_query(dict(request.GET.items()), broker)
    except search.BadQuery as error:
        return _bad(error)
    try:
        result = search.search(broker.client, query)
    except redis.RedisError as error:
        return _unavailable(error)
    return json_response(200, result, **{"Cache-Control": "no-store"})


@view_config(route_name="ops_api_job", request_method="GET")
def api_job(request):
    job_id = request.matchdict["job_id"]
    if not search.is_uuid(job_id):
        return json_error(400, "bad_job_id", f"{job_id[:60]!r} is not a job id; job ids are UUIDs, as the 202 gave")
    broker = request.registry.broker
    try:
        job = broker.jobs.get(job_id)
        logs = joblogs.read(broker.client, job_id) if job is not None else []
    except redis.RedisError as error:
        return _unavailable(error)
    if job is None:
        return json_error(404, "job_not_found", f"no job {job_id}: unknown, or its status expired")
    job["logs"] = logs
    job["actions"] = [action for action, states in APPLIES.items() if job["state"] in states]
    return json_response(200, job, **{"Cache-Control": "no-store"})


def _answer(request, outcome, back):
    """A form gets a redirect back (or a message page), a script JSON."""
    if _is_form(request):
        if outcome["ok"]:
            return HTTPSeeOther(request.application_url + back)
        return message(request, outcome["status"], "Not done", outcome["message"])
    return json_response(outcome["status"], dict(outcome))


@view_config(route_name="ops_api_job_action", request_method="POST")
def api_action(request):
    check_post(request)
    job_id, action = request.matchdict["job_id"], request.matchdict["action"]
    if not search.is_uuid(job_id):
        return json_error(400, "bad_job_id", f"{job_id[:60]!r} is not a job id; job ids are UUIDs, as the 202 gave")
    broker = request.registry.broker
    try:
        outcomes, confirmed = search.act(broker, action, [job_id], _user(request))
    except redis.RedisError as error:
        return _unavailable(error)
    outcome = outcomes[0]
    if confirmed is not None and confirmed < broker.replicas.required():
        outcome["message"] += (f" (on the master; {confirmed} of {broker.replicas.required()} replica(s) confirmed it "
                               "in time)")
    _audit(request, f"{action} job", job_id=job_id, outcome=outcome["message"] if not outcome["ok"] else outcome["state"])
    return _answer(request, outcome, route_path(request, "ops_job", job_id=job_id))


def _bulk_request(request):
    """(action, ids or None, query dict or None, where to go back to) from JSON or a form."""
    if _is_form(request):
        form = request.POST
        action = form.get("action", "")
        back = form.get("back", "")
        back = back if back.startswith("/ops/jobs") and "//" not in back else "/ops/jobs"
        if form.get("scope") == "search":
            query = {name[2:]: value for name, value in form.items() if name.startswith("q_")}
            return action, None, query, back
        return action, form.getall("ids"), None, back
    try:
        body = request.json_body
    except ValueError:
        raise search.BadQuery("body", 'the body must be JSON: {"action": "cancel", "ids": ["<job id>", ...]} or '
                                      '{"action": "cancel", "query": {"state": "queued", ...}}') from None
    if not isinstance(body, dict) or ("ids" in body) == ("query" in body):
        raise search.BadQuery("body", 'the body must be a JSON object with "action" and either "ids" or "query"')
    query = body.get("query")
    if query is not None and not isinstance(query, dict):
        raise search.BadQuery("query", "query must be an object of search parameters, as GET /ops/api/jobs takes")
    return body.get("action"), body.get("ids"), query, None


@view_config(route_name="ops_api_jobs_bulk", request_method="POST")
def api_bulk(request):
    check_post(request)
    broker = request.registry.broker
    back = None
    try:
        action, ids, query, back = _bulk_request(request)
        if action not in search.ACTIONS:
            raise search.BadQuery("action", f"action must be one of {', '.join(search.ACTIONS)}, "
                                            f"got {str(action)[:40]!r}")
        scanned = None
        if query is not None:
            try:
                parsed = search.parse_query({k: v for k, v in query.items() if k not in ("limit", "cursor")}, broker)
            except search.BadQuery as error:
                raise search.BadQuery(f"query.{error.field}", error.message) from None
            from dataclasses import replace

            found = search.search(broker.client, replace(parsed, limit=search.MAX_BULK))
            ids, scanned = [job["job_id"] for job in found["jobs"]], found
            if not ids:
                raise search.BadQuery("query", "no job matches this search: nothing to do")
        else:
            ids = search.check_ids(ids)
    except search.BadQuery as error:
        if back is not None:
            return message(request, 400, "Not done", error.message)
        return _bad(error)
    except redis.RedisError as error:
        return _unavailable(error)
    try:
        outcomes, confirmed = search.act(broker, action, ids, _user(request), bulk=True)
    except redis.RedisError as error:
        return _unavailable(error)
    done = [outcome for outcome in outcomes if outcome["ok"]]
    _audit(request, f"bulk {action}", count=len(ids), done=len(done), job_ids=ids[:AUDIT_IDS],
           **({"query": {k: v for k, v in query.items()}} if query is not None else {}))
    summary = f"{action}: {len(done)} of {len(ids)} job(s) done"
    if len(done) < len(ids):
        summary += f"; {len(ids) - len(done)} refused (see each job's message)"
    if back is not None:
        return HTTPSeeOther(request.application_url + back)
    body = {"action": action, "count": len(ids), "done": len(done), "message": summary,
            "results": [dict(outcome) for outcome in outcomes]}
    if scanned is not None:
        body.update(scanned=scanned["scanned"], more=scanned["more"], note=scanned["note"])
    if confirmed is not None:
        body["replicas_confirmed"] = confirmed
    return json_response(200, body)


def includeme(config):
    config.add_route("ops_search", "/ops/jobs")
    config.add_route("ops_job", "/ops/jobs/{job_id}")
    config.add_route("ops_api_jobs", "/ops/api/jobs")
    config.add_route("ops_api_jobs_bulk", "/ops/api/jobs/bulk")
    config.add_route("ops_api_job", "/ops/api/jobs/{job_id}")
    config.add_route("ops_api_job_action", "/ops/api/jobs/{job_id}/{action:cancel|run-now|retry}")
