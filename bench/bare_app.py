"""The HTTP baseline: a bare Pyramid view returning JSON, under the same waitress settings."""
from pyramid.config import Configurator
from pyramid.response import Response


def hello(request):
    return Response(json_body={"job_id": "0", "queue": "comer", "status_url": "x"}, status=202)


def main(global_config, **settings):
    with Configurator(settings=settings) as config:
        config.add_route("order", "/comer/{item}")
        config.add_view(hello, route_name="order")
        return config.make_wsgi_app()
