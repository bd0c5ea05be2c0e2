"""The console's CSRF protection: the token cookie (Pyramid's cookie policy, made ``Secure``
over HTTPS), and the check every console POST passes (``check_post``).

Pyramid's CookieCSRFStoragePolicy takes ``secure`` once, for every request. Behind the front
proxy a request is HTTPS when HAProxy says so (X-Forwarded-Proto from the trusted proxy), so
the choice is made per request: ``Secure`` when the request came over HTTPS (the browser then
never sends the token over plain HTTP), without it over plain HTTP (development), where a
``Secure`` cookie would never come back.
"""
from pyramid.csrf import CookieCSRFStoragePolicy, check_csrf_origin, check_csrf_token
from pyramid.exceptions import BadCSRFOrigin


class SecureOverTLSCSRFStoragePolicy(CookieCSRFStoragePolicy):
    def __init__(self, **options):
        super().__init__(secure=False, **options)
        self._over_tls = CookieCSRFStoragePolicy(secure=True, **options)

    def new_csrf_token(self, request):
        if request.scheme == "https":
            return self._over_tls.new_csrf_token(request)
        return super().new_csrf_token(request)


class UnreadableForm(ValueError):
    """A POST whose body does not parse as the form its Content-Type claims (multipart with
    no boundary, say): answered 400 (foodapp/views/errors.py), not 500."""


def check_post(request):
    """What every state-changing request of the console must pass, in one place: the same
    origin (Pyramid checks Origin, else Referer, over HTTPS only; over plain HTTP an Origin
    header, when the browser sends one, must be this site's too) and the page's CSRF token
    (header X-CSRF-Token, or the form's csrf_token)."""
    check_csrf_origin(request)
    origin = request.headers.get("Origin")
    if request.scheme != "https" and origin is not None and origin.split(" ")[-1].rstrip("/") != request.host_url:
        raise BadCSRFOrigin(origin)
    try:
        check_csrf_token(request)  # without an X-CSRF-Token header, it reads the form
    except ValueError as error:
        raise UnreadableForm(str(error)) from None
