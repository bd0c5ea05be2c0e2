"""GET /metrics: Prometheus text format."""
from prometheus_client import CONTENT_TYPE_LATEST
from pyramid.response import Response
from pyramid.view import view_config

from foodapp.metrics import exposition


@view_config(route_name="metrics", request_method="GET")
def metrics(request):
    response = Response(body=exposition(request.registry.broker))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
