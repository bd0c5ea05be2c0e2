"""Public URLs in answers (an order's status_url and Location): from app.public_url, never the Host header.

A client's Host header says nothing trustworthy about where foodapp lives: a URL built from
it can point anywhere the client likes, and an idempotent replay would hand that URL to
another client. With ``app.public_url`` set (``https://food.example.com``) the URL is that
base and the route's path; unset, it is the path alone (``/api/jobs/<id>``), which a client
resolves against the URL it sent the request to.
"""
import re
from urllib.parse import quote

from pyramid.interfaces import IRoutesMapper
from pyramid.response import Response as _Response
from pyramid.urldispatch import PATH_SAFE

_PLACEHOLDER = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def route_path(request, route_name, **parts):
    """The route's path with ``parts`` quoted in, as ``request.route_path`` makes it, but
    without its cache: Pyramid keeps every path segment it ever quoted
    (``pyramid.traversal._segment_cache``, never trimmed), so a URL per job id grew every
    web process by about 90 bytes an order, for ever (found by the soak's memory figures)."""
    pattern = request.registry.getUtility(IRoutesMapper).get_route(route_name).pattern
    return _PLACEHOLDER.sub(lambda match: quote(str(parts[match.group(1)]), safe=PATH_SAFE), pattern)


def public_url(request, route_name, **parts):
    """``app.public_url`` + the route's path, or the path alone when it is not set."""
    path = route_path(request, route_name, **parts)
    base = request.registry.foodapp.app_public_url
    return base + path if base else path


class Response(_Response):
    """A Response whose Location goes out as written.

    WebOb (1.8) makes a relative Location absolute when it sends the answer, from the
    request's Host header: exactly what a relative status URL is meant to avoid. RFC 9110
    allows a relative Location; clients resolve it against the URL they asked.
    """

    def _abs_headerlist(self, environ):
        return list(self._headerlist)
