"""dramatiq-dashboard, mounted in front of the Pyramid app at ``dashboard.prefix``; and the
protection (login, security headers) in front of everything."""
import io
import json
from urllib.parse import parse_qs

from dramatiq_dashboard import DashboardApp

from foodapp.security import Protected, audit

#: The dashboard's state-changing actions, recorded in the audit log.
ACTIONS = {"/delete-message": "delete", "/requeue-message": "requeue"}


class DashboardMount:
    """WSGI middleware: requests under the prefix go to the dashboard, the rest to the app."""

    def __init__(self, app, broker, prefix):
        self.app = app
        self.broker = broker
        self.prefix = prefix
        self.dashboard = DashboardApp(broker, prefix)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == self.prefix or path.startswith(self.prefix + "/"):
            environ = {**environ, "PATH_INFO": path[len(self.prefix):] or "/",
                       "SCRIPT_NAME": environ.get("SCRIPT_NAME", "") + self.prefix}
            action = ACTIONS.get(environ["PATH_INFO"].rstrip("/"))
            if action and environ.get("REQUEST_METHOD") == "POST":
                return self._audited(action, environ, start_response)
            return self.dashboard(environ, start_response)
        return self.app(environ, start_response)

    def _audited(self, action, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        form = {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
        queue, rid = form.get("queue", ""), form.get("id", "")
        raw = self.broker.client.hget(f"{self.broker.namespace}:{queue}.msgs", rid) if queue and rid else None
        job_id = json.loads(raw)["message_id"] if raw else None
        answered = []

        def recording(status, headers, exc_info=None):
            answered.append(status)
            return start_response(status, headers, exc_info)

        result = self.dashboard({**environ, "wsgi.input": io.BytesIO(body)}, recording)
        if answered and answered[0].startswith(("200", "302")):
            audit(self.broker.client, environ, f"dashboard {action}", queue=queue, job_id=job_id)
        return result


def mount(app, registry):
    settings = registry.foodapp
    if settings.dashboard_enabled:
        app = DashboardMount(app, registry.broker, settings.dashboard_prefix)
    return Protected(
        app, [settings.dashboard_prefix, "/ops"], settings.dashboard_username,
        settings.dashboard_password_hash if settings.dashboard_login_required else None,
        client=registry.broker.client, max_failures=settings.dashboard_login_max_failures,
        failure_window=settings.dashboard_login_failure_window,
    )
