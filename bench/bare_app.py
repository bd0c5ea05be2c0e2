"""The HTTP baseline: a bare Pyramid view returning JSON, under the same waitress settings."""
from pyramid.config import Configurator
from pyramid.response import Response


def hello(request):
    return Response(json_body={"job_id": "0", "queue": "comer", "status_url": "x"}, status=202)


def main(global_config, **settings):
    same_interpreter(settings)  # as foodapp's web process: the same waitress, the same GIL hand-over
    with Configurator(settings=settings) as config:
        config.add_route("order", "/comer/{item}")
        config.add_view(hello, route_name="order")
        return config.make_wsgi_app()


def same_interpreter(settings):
    """Give a baseline app the switch interval foodapp's app factory sets in its process
    (web.switch_interval_ms, from the ini or FOODAPP_WEB_SWITCH_INTERVAL_MS): what is
    compared is the views, not one process's GIL hand-over against another's."""
    import os

    from foodapp import switch_interval
    from foodapp.settings import Settings

    raw = os.environ.get("FOODAPP_WEB_SWITCH_INTERVAL_MS") or settings.get("web.switch_interval_ms")
    switch_interval(float(raw) if raw else Settings.web_switch_interval_ms)
