"""dramatiq-dashboard, mounted in front of the Pyramid app at ``dashboard.prefix``; and the
protection (login, security headers) in front of everything.

What foodapp adds in front of the dashboard (its own code is used as it is):

- its front page lists the workers from foodapp's heartbeat records with O(1) commands per
  worker, instead of its Lua script's ``KEYS`` over the whole keyspace once per worker
  (which, with production's key count, could block Redis past Sentinel's down-after);
- its CSRF token cookie is checked exactly (the dashboard's own lookup is an unanchored
  regular expression, so a cookie named ``x__dd_csrf`` passed, and a cookie's value was
  echoed unescaped into its forms): only one ``__dd_csrf`` cookie of 64 hex digits reaches
  it, and every POST needs that token in its form and, when the browser names one, the
  same origin (``Origin``, else ``Referer``);
- a POST with a field given twice is refused (the dashboard acts on the last one, the
  audit would have read the first), and the audit records what was actually removed.
"""
import hmac
import html
import io
import json
import re
import time
from datetime import datetime
from urllib.parse import parse_qsl, urlsplit

from dramatiq.common import q_name
from dramatiq_dashboard import DashboardApp
from dramatiq_dashboard.application import tab_from_q_name
from dramatiq_dashboard.csrf import csrf_protect
from dramatiq_dashboard.http import HTTP_405, HTTP_410, handler, redirect
from dramatiq_dashboard.interface import RedisInterface, Worker

from foodapp import ops, search
from foodapp.broker import EnqueueUnavailable
from foodapp.durable import TooFewReplicas
from foodapp.security import Protected, audit, json_answer

#: The dashboard's state-changing actions, recorded in the audit log.
ACTIONS = {"/delete-message": "delete", "/requeue-message": "requeue"}
CSRF_COOKIE = "__dd_csrf"
CSRF_TOKEN = re.compile(r"[0-9a-f]{64}")
DEFAULT_PORTS = {"http": 80, "https": 443}


class HeartbeatInterface(RedisInterface):
    """The dashboard's Redis interface, with its worker listing read without KEYS."""

    @property
    def workers(self):
        now = time.time()
        return sorted((Worker(name=worker["name"],
                              last_seen=datetime.utcfromtimestamp(max(now - worker["silent_seconds"], 0)),
                              jobs_in_flight=sum(worker["in_flight"].values()))
                       for worker in ops.workers(self.broker)), key=lambda worker: worker.name)


class FoodDashboardApp(DashboardApp):
    """dramatiq-dashboard's app, with its Requeue in the order that loses nothing, and its
    Delete refused while no replica could confirm it.

    Its own Requeue deleted the message first and enqueued the copy after: when Redis
    refused the enqueue (a failover; a master without its replicas), the job was gone. Here
    the copy is stored first (foodapp's enqueue: all of it or nothing) and the message
    removed after; a failure in between leaves a duplicate, which runs once (the ledger is
    keyed by job id), never a loss, as ``foodapp requeue`` does (foodapp/deadletters.py).
    """

    @handler
    @csrf_protect
    def delete_message(self, req):
        if req.method != "POST":
            return HTTP_405, "Expected a POST request."
        queue = req.post_data["queue"]
        try:
            self.broker.replicas.for_write()
        except TooFewReplicas as error:
            return "503 Service Unavailable", (
                f"<p>Redis cannot take the delete now ({html.escape(str(error))}). The message is still in "
                f"{html.escape(queue)}: try again in a moment.</p>")
        self.iface.delete_message(queue, req.post_data["id"])
        return redirect(self.make_uri("queues", q_name(queue), tab_from_q_name(queue)))

    @handler
    @csrf_protect
    def requeue_message(self, req):
        if req.method != "POST":
            return HTTP_405, "Expected a POST request."
        queue, message_id = req.post_data["queue"], req.post_data["id"]
        job = self.iface.get_job(queue, message_id)
        if not job:
            return HTTP_410, "The requested message no longer exists."
        try:
            copy = self.broker.enqueue(job.message.copy(
                queue_name=q_name(queue), options={"eta": job.message_timestamp, "retries": 0}))
        except EnqueueUnavailable as error:
            outcome = ("it may have been stored all the same: look for the job in its queue before you requeue "
                       "it again" if error.maybe_stored else "nothing was stored")
            where = "the dead letters" if queue.endswith(".XQ") else html.escape(queue)
            return "503 Service Unavailable", (
                f"<p>Redis did not take the requeue ({html.escape(str(error))}); {outcome}. The message is still "
                f"in {where}: try again in {error.retry_after} s.</p>")
        self.iface.delete_message(queue, message_id)
        return redirect(self.make_uri("queues", q_name(queue), tab_from_q_name(queue), copy.message_id))


def _cookie_token(environ):
    """The one well-formed CSRF token cookie, or None (none, several, or malformed)."""
    values = []
    for part in environ.get("HTTP_COOKIE", "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == CSRF_COOKIE:
            values.append(value.strip())
    if len(values) == 1 and CSRF_TOKEN.fullmatch(values[0]):
        return values[0]
    return None


def _origin(url):
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port or DEFAULT_PORTS.get(parts.scheme.lower())


def _own_origin(environ):
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    return _origin(f"{scheme}://{host}")


class DashboardMount:
    """WSGI middleware: requests under the prefix go to the dashboard, the rest to the app."""

    def __init__(self, app, broker, prefix):
        self.app = app
        self.broker = broker
        self.prefix = prefix
        self.dashboard = FoodDashboardApp(broker, prefix)
        self.dashboard.iface = HeartbeatInterface(broker)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == self.prefix or path.startswith(self.prefix + "/"):
            token = _cookie_token(environ)
            environ = {**environ, "PATH_INFO": path[len(self.prefix):] or "/",
                       "SCRIPT_NAME": environ.get("SCRIPT_NAME", "") + self.prefix}
            # The dashboard sees the token cookie only when it is well formed; otherwise it
            # makes a new one (and never echoes what a client sent).
            environ.pop("HTTP_COOKIE", None)
            if token:
                environ["HTTP_COOKIE"] = f"{CSRF_COOKIE}={token}"
            secure = "; Secure" if environ.get("wsgi.url_scheme") == "https" else ""

            def strict_cookie(status, headers, exc_info=None):
                # The dashboard's token cookie, sent back only to this site's own pages.
                headers = [(name, value + "; SameSite=Strict" + secure) if name.lower() == "set-cookie"
                           and value.startswith(CSRF_COOKIE + "=") else (name, value) for name, value in headers]
                return start_response(status, headers, exc_info)

            if environ.get("REQUEST_METHOD") == "POST":
                answer = self._post(environ, token, strict_cookie)
            else:
                answer = self.dashboard(environ, strict_cookie)
            if answer is None:
                # No dashboard route matched (its catch-all does not match a newline), and
                # its app answered nothing at all: a 404, not the 500 a server makes of None.
                return json_answer(start_response, "404 Not Found", {
                    "error": "not_found",
                    "message": f"the dashboard has no page {path!r}; start from {self.prefix}/"})
            return answer
        return self.app(environ, start_response)

    def _post(self, environ, token, start_response):
        refused = self._cross_origin(environ)
        if refused:
            return json_answer(start_response, "403 Forbidden", {"error": "cross_origin_request", "message": refused})
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        fields = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        names = [name for name, _ in fields]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            return json_answer(start_response, "400 Bad Request", {
                "error": "repeated_field",
                "message": f"the field(s) {', '.join(repeated)} are given more than once; send each field once, "
                           "as the dashboard's own buttons do",
            })
        form = dict(fields)
        sent = form.get(CSRF_COOKIE, "")
        if token is None or not hmac.compare_digest(sent.encode(), token.encode()):
            return json_answer(start_response, "403 Forbidden", {
                "error": "bad_csrf_token",
                "message": "this form was not sent from the dashboard's own page (its CSRF token is missing, "
                           "malformed or does not match its cookie): reload the page and try again",
            })
        environ = {**environ, "wsgi.input": io.BytesIO(body)}
        action = ACTIONS.get(environ["PATH_INFO"].rstrip("/"))
        if action:
            return self._audited(action, form, environ, start_response)
        return self.dashboard(environ, start_response)

    def _cross_origin(self, environ):
        """Why a POST is refused as coming from another site, or None."""
        own = _own_origin(environ)
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None:
            if _origin(origin) != own:
                return (f"this form was sent from the page of another origin ({origin!r}), not from this "
                        "site's dashboard: open the dashboard on this site and use its buttons")
            return None
        referer = environ.get("HTTP_REFERER")
        if referer is not None and _origin(referer) != own:
            return (f"this form was sent from a page of another origin ({referer!r}), not from this "
                    "site's dashboard: open the dashboard on this site and use its buttons")
        return None

    def _audited(self, action, form, environ, start_response):
        queue, rid = form.get("queue", ""), form.get("id", "")
        key = f"{self.broker.namespace}:{queue}.msgs"
        raw = self.broker.client.hget(key, rid) if queue and rid else None
        answered = []

        def recording(status, headers, exc_info=None):
            answered.append(status)
            return start_response(status, headers, exc_info)

        result = self.dashboard(environ, recording)
        if answered and answered[0].startswith(("200", "302")):
            removed = raw is not None and not self.broker.client.hexists(key, rid)
            job_id = json.loads(raw)["message_id"] if removed else None
            if removed and action == "delete" and not queue.endswith(".XQ"):
                # A waiting or delayed job whose message is gone will not run: its status
                # says so (a deleted dead letter stays dead or failed, as it was).
                # Its replicas were asked for before the delete (delete_message).
                search.act(self.broker, "cancel", [job_id], environ.get("REMOTE_USER") or "anonymous",
                           via="dashboard delete", replicas=self.broker.replicas.required())
            audit(self.broker.client, environ, f"dashboard {action}", queue=queue, job_id=job_id, removed=removed)
        return result


def mount(app, registry):
    settings = registry.foodapp
    if settings.dashboard_enabled:
        app = DashboardMount(app, registry.broker, settings.dashboard_prefix)
    return Protected(
        # /reports too: a report lists what every client ordered.
        app, [settings.dashboard_prefix, "/ops", "/reports"], settings.dashboard_username,
        settings.dashboard_password_hash if settings.dashboard_login_required else None,
        client=registry.broker.client, max_failures=settings.dashboard_login_max_failures,
        failure_window=settings.dashboard_login_failure_window,
    )
