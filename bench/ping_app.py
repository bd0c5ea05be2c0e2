"""A floor for the HTTP figures: a Pyramid view that makes one Redis round trip (redis-py's
``PING``, through its pool, as any Redis web app's call goes) and answers what
bench/bare_app.py answers. No view that stores a job in Redis can do less per request, so
its rate ÷ the bare view's is the most any order's "÷ bare view" can read on the machine."""
import os

import redis
from pyramid.config import Configurator
from pyramid.response import Response

from bench.bare_app import same_interpreter


def main(global_config, **settings):
    same_interpreter(settings)  # as foodapp's web process: the same waitress, the same GIL hand-over
    client = redis.Redis.from_url(os.environ["FOODAPP_REDIS_URL"])

    def order(request):
        client.ping()
        return Response(json_body={"job_id": "0", "queue": "comer", "status_url": "x"}, status=202)

    with Configurator(settings=settings) as config:
        config.add_route("order", "/comer/{item}")
        config.add_view(order, route_name="order")
        return config.make_wsgi_app()
