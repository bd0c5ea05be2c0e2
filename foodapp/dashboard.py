"""dramatiq-dashboard, mounted in front of the Pyramid app at ``dashboard.prefix``."""
from dramatiq_dashboard import DashboardApp


class DashboardMount:
    """WSGI middleware: requests under the prefix go to the dashboard, the rest to the app."""

    def __init__(self, app, broker, prefix):
        self.app = app
        self.prefix = prefix
        self.dashboard = DashboardApp(broker, prefix)

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == self.prefix or path.startswith(self.prefix + "/"):
            environ = {**environ, "PATH_INFO": path[len(self.prefix):] or "/",
                       "SCRIPT_NAME": environ.get("SCRIPT_NAME", "") + self.prefix}
            return self.dashboard(environ, start_response)
        return self.app(environ, start_response)


def mount(app, registry):
    settings = registry.foodapp
    if not settings.dashboard_enabled:
        return app
    return DashboardMount(app, registry.broker, settings.dashboard_prefix)
