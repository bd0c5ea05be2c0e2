"""Error answers: JSON with a message, never an HTML page or a traceback."""
import logging

import redis
from pyramid.exceptions import BadCSRFOrigin, BadCSRFToken, PredicateMismatch, URLDecodeError
from pyramid.httpexceptions import HTTPException
from pyramid.view import exception_view_config, notfound_view_config

from foodapp.broker import EnqueueUnavailable, describe
from foodapp.csrf import UnreadableForm
from foodapp.views import json_error

log = logging.getLogger(__name__)

ROUTES_HINT = ("try GET /comer/<food>, /beber/<drink>, POST /menu, POST /reports, GET /api/jobs/<job_id>, "
               "/jobs, /openapi.json")


@notfound_view_config()
def not_found(exc, request):
    # A route matched, but none of its views takes this method: 405, naming those that do.
    allowed = allowed_methods(request, request.matched_route.name) if request.matched_route else ""
    if isinstance(exc, PredicateMismatch) and allowed:
        return json_error(405, "method_not_allowed", f"{request.method} is not allowed on {request.path}; use {allowed}",
                          Allow=allowed)
    return json_error(404, "not_found", f"nothing at {request.method} {request.path}; {ROUTES_HINT}")


def allowed_methods(request, route_name):
    """The methods the views of a route are registered for (read once from Pyramid's
    introspector), e.g. "GET, POST"; "" when a view takes any method."""
    cache = request.registry.__dict__.setdefault("_foodapp_allowed_methods", {})
    if not cache:
        for entry in request.registry.introspector.get_category("views"):
            view = entry["introspectable"]
            if view["route_name"]:
                wanted = view["request_methods"]
                cache.setdefault(view["route_name"], set()).update(
                    [wanted] if isinstance(wanted, str) else wanted or ())
    return ", ".join(sorted(cache.get(route_name, ())))


@exception_view_config(UnreadableForm)
def unreadable_form(exc, request):
    return json_error(400, "bad_form", f"the body does not parse as its Content-Type says ({exc}): send JSON with "
                                       "Content-Type application/json, or the page's form as it is")


@exception_view_config(BadCSRFToken)
def bad_csrf(exc, request):
    return json_error(403, "bad_csrf_token", "this form was not sent from foodapp's own page: reload the page and try again")


@exception_view_config(BadCSRFOrigin)
def bad_csrf_origin(exc, request):
    # Pyramid checks a form POST's Origin (else Referer) over HTTPS only.
    return json_error(
        403, "bad_csrf_origin",
        f"this form was sent from another site (Origin or Referer {exc.detail or 'missing'}), not from "
        f"{request.host_url}: open foodapp's own page there and send the form from it",
    )


@exception_view_config(URLDecodeError)
def bad_encoding(exc, request):
    return json_error(
        400, "bad_item",
        "the URL is not valid percent-encoded UTF-8: encode names as UTF-8, e.g. /comer/jam%C3%B3n",
    )


@exception_view_config(EnqueueUnavailable)
def enqueue_unavailable(exc, request):
    # An OOM reply (redis-py words it "command not allowed when used memory > 'maxmemory'").
    full = "Redis is out of memory (used memory is past its maxmemory, and it refuses writes) - " \
        if "maxmemory" in str(exc.reason) else ""
    return json_error(
        503, "redis_unavailable",
        f"the job was not accepted: {full}{exc.reason}. Nothing was queued; send the request again later",
        **{"Retry-After": str(exc.retry_after)},
    )


@exception_view_config(redis.exceptions.NoPermissionError)
def redis_refused(exc, request):
    settings = request.registry.foodapp
    log.error("Redis refused a command to user %r (NOPERM) on %s %s: %s",
              settings.redis_username or "default", request.method, request.path, exc)
    return json_error(
        500, "redis_refused",
        f"Redis ({describe(settings)}) refused a command to the app's user "
        f"{settings.redis_username or 'default'!r} (NOPERM: {exc}); this request may not have been carried out, "
        "or only in part. The app's Redis user lacks a permission it needs: add it to the Redis ACL "
        "(deploy/redis/users.acl) and load it (ACL LOAD). Sending the request again fails the same way until then",
    )


@exception_view_config(redis.exceptions.AuthenticationError)
def redis_login_failed(exc, request):
    settings = request.registry.foodapp
    log.error("Redis refused the login of user %r: %s", settings.redis_username or "default", exc)
    return json_error(
        500, "redis_login_failed",
        f"Redis ({describe(settings)}) refused the login of user {settings.redis_username or 'default'!r}: {exc}. "
        "Nothing was done. Set FOODAPP_REDIS_PASSWORD to that user's password and redis.username in the ini "
        "to the user Redis knows (deploy/redis/users.acl), then restart the web processes",
    )


@exception_view_config(redis.RedisError)
def redis_unavailable(exc, request):
    settings = request.registry.foodapp
    return json_error(
        503, "redis_unavailable",
        f"Redis ({describe(settings)}) did not answer: {exc}. Try again later",
        **{"Retry-After": str(settings.enqueue_retry_after_seconds)},
    )


@exception_view_config(HTTPException)
def http_exception(exc, request):
    return json_error(exc.code, exc.title.lower().replace(" ", "_"), exc.explanation or exc.title)


@exception_view_config(Exception)
def unexpected(exc, request):
    log.error("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return json_error(500, "internal_error", "foodapp failed to answer this request; the error is in its log")
