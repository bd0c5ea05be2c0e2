"""The OpenAPI 3 description of foodapp's HTTP interface, served at /openapi.json.

The limits it publishes (the longest item name, the most items in a menu, the longest
delay, how long an Idempotency-Key is kept) are the running app's settings, read from
the ini and the environment: ``document(settings)`` never states a number of its own.
"""
from foodapp.jobs import STATES
from foodapp.settings import Settings


def _error(description):
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _json(description, schema):
    return {"description": description, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


UNAVAILABLE = {
    "description": "Redis did not take the request in time. error \"redis_unavailable\": nothing was stored; "
                   "send it again after Retry-After seconds. error \"outcome_unknown\": a master stored it but "
                   "no replica confirmed it (or its reply was lost), so it may run; the body also holds the "
                   "answer a 202 would have given (job_id, status_url...): check the status_url, or send again "
                   "with the same Idempotency-Key, which never makes a second job.",
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
SERVER_ERROR = _error(
    "The server is misconfigured or failed: error \"redis_refused\" (the app's Redis user lacks a permission "
    "this request needs, NOPERM: fix the Redis ACL), \"redis_login_failed\" (Redis refused the app's user or "
    "password: nothing was done) or \"internal_error\" (in the log). Sending again does not help until it is fixed.")
COMMON = {"404": _error("No such route or object"), "500": SERVER_ERROR, "503": UNAVAILABLE}


def _idempotency(settings):
    return {
        "name": "Idempotency-Key", "in": "header", "required": False,
        "description": f"Send the same key again (within orders.idempotency_ttl, {settings.orders_idempotency_ttl} s) "
                       "to get the first answer back instead of a second job. The same key with another request "
                       "is refused with 422.",
        "schema": {"type": "string", "pattern": "^[\\x20-\\x7e]{1,255}$"},
    }

UUID = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def _item_pattern(settings):
    """What foodapp/items.py enforces, but "not only spaces", which a pattern says badly."""
    return f"^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029/%]{{1,{settings.orders_max_item_length}}}$"


def _delay(settings):
    longest = settings.orders_max_delay_seconds
    return [
        {"name": "delay", "in": "query", "required": False,
         "description": f"Seconds to wait before the job may run (0 to orders.max_delay_seconds, {longest}).",
         "schema": {"type": "number", "minimum": 0, "maximum": longest}},
        {"name": "eta", "in": "query", "required": False,
         "description": f"When the job may run, ISO 8601 with a time zone, at most {longest} s from now.",
         "schema": {"type": "string", "format": "date-time"}},
    ]


def _order(queue, what, settings):
    operation = {
        "summary": f"Order one {what}: queue a job on the {queue} queue",
        "parameters": [
            {"name": "item", "in": "path", "required": True,
             "description": f"UTF-8, 1 to orders.max_item_length ({settings.orders_max_item_length}) "
                            "characters, not only spaces, no control characters, '/' or '%'.",
             "schema": {"type": "string", "pattern": _item_pattern(settings)}},
            *_delay(settings), _idempotency(settings),
        ],
        "responses": {
            "202": {**_json("Accepted: the job is stored (and replicated)", "JobAccepted"),
                    "headers": {"Location": {"schema": {"type": "string"}}}},
            "400": _error("The item name or the delay breaks a rule; the message names it"),
            "422": _error("The Idempotency-Key was used for another request"),
            **COMMON,
        },
    }
    return {"get": {**operation, "operationId": f"{queue}_get"}, "post": {**operation, "operationId": f"{queue}_post"}}


def _no_item(queue):
    operation = {"summary": f"/{queue} without an item: answered 400, naming what is missing",
                 "responses": {"400": _error("The item name is empty"), **COMMON}}
    return {"get": {**operation, "operationId": f"{queue}_empty_get"},
            "post": {**operation, "operationId": f"{queue}_empty_post"}}


def _page(operation_id, summary, parameters=(), method="get", responses=None):
    html = {"description": summary, "content": {"text/html": {"schema": {"type": "string"}}}}
    return {method: {"operationId": operation_id, "summary": summary, "parameters": list(parameters),
                     "responses": responses or {"200": html, "401": _error("Log in (production)"),
                                                "404": {**html, "description": "No such page or job"}}}}


def _console_json(operation_id, summary, method="get", parameters=(), body=None, responses=None):
    """An operation of the console's JSON API (under /ops, behind the production login;
    a POST needs the page's CSRF token in X-CSRF-Token and the same origin, and is audited)."""
    answer = {"description": "The answer", "content": {"application/json": {"schema": {"type": "object"}}}}
    operation = {"operationId": operation_id, "summary": summary, "parameters": list(parameters),
                 "responses": {"200": answer, "401": _error("Log in (production)"), **(responses or {}), **COMMON}}
    if method == "post":
        operation["responses"].update({"400": _error("Bad input: the error names it"),
                                       "403": _error("CSRF token or origin refused")})
    if body:
        operation["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    return {method: operation}


def _path(name, description, **schema):
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", **schema}}


_JOB_SEARCH = [
    {"name": "id", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "item", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 256}},
    {"name": "actor", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "queue", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "state", "in": "query", "required": False, "schema": {"type": "string", "enum": list(STATES)}},
    {"name": "since", "in": "query", "required": False, "description": "ISO 8601 (UTC without a zone) or epoch s",
     "schema": {"type": "string"}},
    {"name": "until", "in": "query", "required": False, "description": "ISO 8601 (UTC without a zone) or epoch s",
     "schema": {"type": "string"}},
    {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
    {"name": "cursor", "in": "query", "required": False, "description": "next_cursor of an earlier answer",
     "schema": {"type": "string"}},
]


def document(settings=None):
    """The document for an app with these settings (foodapp.settings.Settings; its defaults if None)."""
    settings = Settings() if settings is None else settings
    item_pattern = _item_pattern(settings)
    return {
        "openapi": "3.0.3",
        "info": {"title": "foodapp", "version": "0.1.0",
                 "description": "Orders over HTTP become Dramatiq jobs on Redis, run FIFO, never lost."},
        "paths": {
            "/comer/{item}": _order("comer", "food", settings),
            "/beber/{item}": _order("beber", "drink", settings),
            "/comer": _no_item("comer"),
            "/beber": _no_item("beber"),
            "/menu": {"post": {
                "operationId": "menu",
                "summary": f"Order a whole menu of at most orders.max_batch ({settings.orders_max_batch}) "
                           "items: every item is stored, or none is",
                "parameters": [*_delay(settings), _idempotency(settings)],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Menu"}}}},
                "responses": {
                    "202": {**_json("Accepted: every job is stored", "BatchAccepted"),
                            "headers": {"Location": {"schema": {"type": "string"}}}},
                    "400": _error("The menu breaks a rule; the message names the item and the rule"),
                    "415": _error("The body is not JSON"),
                    "422": _error("The Idempotency-Key was used for another request"),
                    **COMMON,
                },
            }},
            "/reports": {"post": {
                "operationId": "report",
                "summary": "Queue a report of the ledger on the batch queue",
                "parameters": [_idempotency(settings)],
                "responses": {"202": _json("Accepted", "JobAccepted"), "400": _error("Bad Idempotency-Key"),
                              "422": _error("The Idempotency-Key was used for another request"), **COMMON},
            }},
            "/api/jobs/{job_id}": {"get": {
                "operationId": "job",
                "summary": "A job's state, timestamps, worker, result or error, and timeline (kept jobs.status_ttl, "
                           f"{settings.jobs_status_ttl} s, after its last change)",
                "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": UUID}}],
                "responses": {"200": _json("The job", "Job"), "400": _error("Not a job id (a UUID)"), **COMMON},
            }},
            "/api/batches/{batch_id}": {"get": {
                "operationId": "batch",
                "summary": "A menu's jobs and how many are done",
                "parameters": [{"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string", "pattern": UUID}}],
                "responses": {"200": _json("The batch", "Batch"), "400": _error("Not a batch id (a UUID)"), **COMMON},
            }},
            "/healthz": {"get": {"operationId": "healthz", "summary": "The process answers",
                                 "responses": {"200": _json("Alive", "Health"), "404": COMMON["404"]}}},
            "/readyz": {"get": {"operationId": "readyz", "summary": "Redis takes jobs; the topology seen",
                                "responses": {"200": _json("Ready", "Readiness"), "404": COMMON["404"],
                                              "503": {**_json("Not ready, and why", "Readiness"),
                                                      "headers": {"Retry-After": {"schema": {"type": "integer"}}}}}}},
            "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus metrics",
                                 "responses": {"200": {"description": "Prometheus text format",
                                                       "content": {"text/plain": {"schema": {"type": "string"}}}},
                                               **COMMON}}},
            "/ops": _page("ops", "The operations page (HTML): queues, workers, Redis, audit log"),
            "/ops/jobs": _page("ops_search", "Search recent jobs (HTML); an id alone opens that job's page",
                _JOB_SEARCH,
                responses={"200": {"description": "The search and its results",
                                   "content": {"text/html": {"schema": {"type": "string"}}}},
                           "303": {"description": "To the job's page (an id alone)"}, "401": _error("Log in (production)"),
                           "400": {"description": "A parameter it cannot use (the page says which)",
                                   "content": {"text/html": {"schema": {"type": "string"}}}},
                           "404": _error("No such route")}),
            "/ops/jobs/{job_id}": _page("ops_job", "A job's page (HTML): status, timeline, logs, result, actions", [
                {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}]),
            "/ops/api/jobs": {"get": {
                "operationId": "ops_api_jobs",
                "summary": "Recent jobs, newest first, filtered; at most 5000 looked at per request (then `more` "
                           "and `next_cursor`: narrow the time range or go on)",
                "parameters": _JOB_SEARCH,
                "responses": {"200": {"description": "The jobs found",
                                      "content": {"application/json": {"schema": {"type": "object"}}}},
                              "400": _error("A parameter it cannot use: the error names it"),
                              "401": _error("Log in (production)"), **COMMON}}},
            "/ops/api/jobs/bulk": {"post": {
                "operationId": "ops_api_jobs_bulk",
                "summary": "One action on many jobs: {\"action\", \"ids\": [...]} or {\"action\", \"query\": {...}} "
                           "(at most 1000); CSRF token in X-CSRF-Token; audited",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["action"],
                    "properties": {"action": {"type": "string", "enum": ["cancel", "run-now", "retry"]},
                                   "ids": {"type": "array", "maxItems": 1000, "items": {"type": "string"}},
                                   "query": {"type": "object"}}}}}},
                "responses": {"200": {"description": "What was done to each job",
                                      "content": {"application/json": {"schema": {"type": "object"}}}},
                              "400": _error("Bad input: the error names the field"),
                              "401": _error("Log in (production)"), "403": _error("CSRF token or origin refused"),
                              **COMMON}}},
            "/ops/api/jobs/{job_id}": {"get": {
                "operationId": "ops_api_job",
                "summary": "A job's status, timeline, the lines it logged while it ran, and the actions that apply",
                "parameters": [{"name": "job_id", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": UUID}}],
                "responses": {"200": _json("The job, with logs", "Job"), "400": _error("Not a job id (a UUID)"),
                              "401": _error("Log in (production)"), **COMMON}}},
            "/ops/api/jobs/{job_id}/{action}": {"post": {
                "operationId": "ops_api_job_action",
                "summary": "Cancel a scheduled, queued or retrying job (it never runs); run a scheduled one now "
                           "(once); retry a dead or failed one. CSRF token in X-CSRF-Token; audited",
                "parameters": [{"name": "job_id", "in": "path", "required": True,
                                "schema": {"type": "string", "pattern": UUID}},
                               {"name": "action", "in": "path", "required": True,
                                "schema": {"type": "string", "enum": ["cancel", "run-now", "retry"]}}],
                "responses": {"200": {"description": "Done", "content": {"application/json": {"schema": {"type": "object"}}}},
                              "400": _error("Not a job id"), "401": _error("Log in (production)"),
                              "403": _error("CSRF token or origin refused"),
                              "409": _error("Not in a state this action applies to: the message says why"),
                              **COMMON}}},
            "/ops/queues/{queue}/requeue-dead": _page(
                "ops_requeue", "Requeue every dead letter of a queue (a form of the operations page)",
                [{"name": "queue", "in": "path", "required": True, "schema": {"type": "string", "enum": ["comer", "beber", "batch"]}}],
                method="post",
                responses={"303": {"description": "Done; back to the operations page"},
                           "400": _error("The form did not parse"),
                           "401": _error("Log in (production)"),
                           "403": _error("The form's CSRF token is missing or wrong"),
                           "404": _error("No such queue")}),
            "/ops/api/overview": _console_json(
                "ops_api_overview", "What the overview page shows: Redis ready and its topology, failovers, "
                "memory, the audit log's tail, every queue (counts, pause, latency) and the workers' counts"),
            "/ops/api/series": _console_json(
                "ops_api_series", "The charts' data: jobs per second (processed, failed, retried) and enqueue 503s "
                "per minute; workers, depth and latency per queue, and the share of one core (%) the Redis master "
                "used, per 10-second slot",
                parameters=[{"name": "minutes", "in": "query", "required": False,
                             "schema": {"type": "integer", "minimum": 1, "maximum": 120}}],
                responses={"400": _error("minutes is not a whole number from 1 to 120")}),
            "/ops/api/queues": _console_json(
                "ops_api_queues", "Every queue: queued, delayed, dead letters, paused (by whom, when), and how long "
                "the job at its head has waited"),
            "/ops/api/queues/{queue}/{action}": _console_json(
                "ops_api_queue_action", "Pause a queue (orders are still taken; workers take none of its jobs "
                "within a second), resume it, or purge its waiting jobs (they become cancelled; body "
                "{\"confirm\": \"<queue>\"}; delayed and dead ones stay)", method="post",
                parameters=[_path("queue", "comer, beber or batch"),
                            _path("action", "what to do", enum=["pause", "resume", "purge"])],
                body={"type": "object", "properties": {"confirm": {"type": "string"}}}),
            "/ops/workers": _page("ops_workers", "The Workers page (HTML): every worker process, and this host's "
                                  "supervisord programs with stop, start and restart"),
            "/ops/api/workers": _console_json(
                "ops_api_workers", "Every worker process (host, pid, queues, threads busy, jobs done, RSS, CPU, "
                "uptime, last heartbeat) and this host's supervisord programs"),
            "/ops/api/workers/{program}/{action}": _console_json(
                "ops_api_worker_action", "Stop, start or restart a worker program through this host's supervisord",
                method="post",
                parameters=[_path("program", "as supervisord names it, e.g. workers:workers_00"),
                            _path("action", "what to do", enum=["stop", "start", "restart"])],
                responses={"202": {"description": "Asked; still under way after 30 s",
                                   "content": {"application/json": {"schema": {"type": "object"}}}},
                           "502": _error("supervisord refused (bad credentials, say)"),
                           "503": _error("supervisord did not answer: is it running on this host?")}),
            "/ops/periodic": _page("ops_periodic", "The periodic jobs (HTML): each schedule's cron, next and last "
                                   "run, and the schedulers"),
            "/ops/api/periodic": _console_json(
                "ops_api_periodic", "Each periodic job (periodic.jobs): cron, actor, next run, last run with its "
                "job and who fired it; the schedulers' heartbeats"),
            "/ops/api/periodic/{name}/run": _console_json(
                "ops_api_periodic_run", "Run a periodic job now (once per Idempotency-Key)", method="post",
                parameters=[_path("name", "a name of periodic.jobs"), _idempotency(settings)],
                responses={"202": _json("Queued", "JobAccepted")}),
            "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3",
                                                            "content": {"application/json": {"schema": {"type": "object"}}}},
                                                    "404": COMMON["404"]}}},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error", "message"],
                      "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
            "JobAccepted": {"type": "object", "required": ["job_id", "queue", "status_url"],
                            "properties": {"job_id": {"type": "string", "format": "uuid"}, "queue": {"type": "string"},
                                           "status_url": {"type": "string"}, "item": {"type": "string"},
                                           "delay_seconds": {"type": "number"}}},
            "BatchAccepted": {"type": "object", "required": ["batch_id", "status_url", "jobs"],
                              "properties": {"batch_id": {"type": "string"}, "status_url": {"type": "string"},
                                             "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/JobAccepted"}}}},
            "Menu": {"type": "array", "minItems": 1, "maxItems": settings.orders_max_batch, "items": {"oneOf": [
                {"type": "object", "required": ["comer"], "additionalProperties": False,
                 "properties": {"comer": {"type": "string", "pattern": item_pattern}}},
                {"type": "object", "required": ["beber"], "additionalProperties": False,
                 "properties": {"beber": {"type": "string", "pattern": item_pattern}}},
            ]}},
            "Job": {"type": "object", "required": ["state", "job_id", "queue", "actor", "events"],
                    "properties": {"state": {"type": "string", "enum": list(STATES)},
                                   "job_id": {"type": "string"}, "queue": {"type": "string"}, "actor": {"type": "string"},
                                   "args": {"type": "array"}, "events": {"type": "array", "items": {"type": "object"}},
                                   "enqueued_at": {"type": "string"}, "started_at": {"type": "string"},
                                   "finished_at": {"type": "string"}, "eta": {"type": "string"},
                                   "retries": {"type": "integer"}, "crashes": {"type": "integer"},
                                   "worker": {"type": "string"}, "worker_name": {"type": "string"},
                                   "worker_pid": {"type": "integer"}, "error": {"type": "string"}, "result": {}}},
            "Batch": {"type": "object", "required": ["batch_id", "job_ids", "total", "done", "states", "finished"],
                      "properties": {"batch_id": {"type": "string"}, "job_ids": {"type": "array", "items": {"type": "string"}},
                                     "total": {"type": "integer"}, "done": {"type": "integer"},
                                     "states": {"type": "object"}, "finished": {"type": "boolean"},
                                     "created_at": {"type": "string"}}},
            "Health": {"type": "object", "properties": {"status": {"type": "string"}}},
            "Readiness": {"type": "object", "required": ["ready", "reason"],
                          "properties": {"ready": {"type": "boolean"}, "reason": {"type": "string"},
                                         "redis": {"type": "object"}}},
        }},
    }
