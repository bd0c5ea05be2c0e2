"""A floor for the HTTP figures: a Pyramid view that makes one Redis round trip and answers
what bench/bare_app.py answers. The round trip is made the cheapest way foodapp knows, the
way its orders make theirs: a script call on a connection of the thread's own
(foodapp/connection.py: no pool, a blocking socket with the kernel's timeouts), whose script
only returns. No view that stores a job in Redis can do less per request, so its rate ÷ the
bare view's is the most any order's "÷ bare view" can read on the machine. (Until the
twenty-fifth run it was redis-py's ``PING`` through its pool, which foodapp's orders came to
undercut once their own connection stopped polling.)"""
import os

import redis
from pyramid.config import Configurator
from pyramid.response import Response

from bench.bare_app import same_interpreter
from foodapp.connection import ThreadConnections


def main(global_config, **settings):
    same_interpreter(settings)  # as foodapp's web process: the same waitress, the same GIL hand-over
    client = redis.Redis.from_url(os.environ["FOODAPP_REDIS_URL"], socket_timeout=2)
    script = client.register_script("return 1")
    connections = ThreadConnections(client)

    def order(request):
        connections.own.call(script, [], [])
        return Response(json_body={"job_id": "0", "queue": "comer", "status_url": "x"}, status=202)

    with Configurator(settings=settings) as config:
        config.add_route("order", "/comer/{item}")
        config.add_view(order, route_name="order")
        return config.make_wsgi_app()
