"""GET /metrics: Prometheus text format."""
from prometheus_client import CONTENT_TYPE_LATEST
from pyramid.response import Response
from pyramid.view import view_config

from foodapp.metrics import exposition
from foodapp.security import sees_detail
from foodapp.views import json_error


@view_config(route_name="metrics", request_method="GET")
def metrics(request):
    if not sees_detail(request):
        return json_error(
            403, "internal_only",
            f"/metrics is shown only to security.internal_networks, and {request.client_addr} is not in them: "
            "scrape from there, or send Authorization: Bearer <FOODAPP_DETAIL_TOKEN>",
        )
    response = Response(body=exposition(request.registry.broker))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
