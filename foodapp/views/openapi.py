"""GET /openapi.json: the description of this interface (foodapp/openapi.py), with this app's limits."""
from pyramid.view import view_config

from foodapp.openapi import document
from foodapp.views import json_response


@view_config(route_name="openapi", request_method="GET")
def openapi(request):
    return json_response(200, document(request.registry.foodapp))
