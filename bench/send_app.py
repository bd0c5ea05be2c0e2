"""The other HTTP baseline: a Pyramid view that just calls plain Dramatiq's ``send()``.

Same route and answer as bench/bare_app.py, plus what any Dramatiq web app does per
request: one message sent through Dramatiq's own RedisBroker (no status record, no replica
acknowledgement, no idempotency, no wake-up).
"""
import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from pyramid.config import Configurator
from pyramid.response import Response

from bench.bare_app import same_interpreter


def main(global_config, **settings):
    same_interpreter(settings)  # as foodapp's web process: the same waitress, the same GIL hand-over
    broker = RedisBroker(url=os.environ["FOODAPP_REDIS_URL"])
    dramatiq.set_broker(broker)

    @dramatiq.actor(queue_name="comer", broker=broker)
    def comer(item):
        return item

    def order(request):
        message = comer.send(request.matchdict["item"])
        return Response(json_body={"job_id": message.message_id, "queue": "comer", "status_url": "x"}, status=202)

    with Configurator(settings=settings) as config:
        config.add_route("order", "/comer/{item}")
        config.add_view(order, route_name="order")
        return config.make_wsgi_app()
