"""The operations page's CSRF token cookie: Pyramid's cookie policy, made ``Secure`` over HTTPS.

Pyramid's CookieCSRFStoragePolicy takes ``secure`` once, for every request. Behind the front
proxy a request is HTTPS when HAProxy says so (X-Forwarded-Proto from the trusted proxy), so
the choice is made per request: ``Secure`` when the request came over HTTPS (the browser then
never sends the token over plain HTTP), without it over plain HTTP (development), where a
``Secure`` cookie would never come back.
"""
from pyramid.csrf import CookieCSRFStoragePolicy


class SecureOverTLSCSRFStoragePolicy(CookieCSRFStoragePolicy):
    def __init__(self, **options):
        super().__init__(secure=False, **options)
        self._over_tls = CookieCSRFStoragePolicy(secure=True, **options)

    def new_csrf_token(self, request):
        if request.scheme == "https":
            return self._over_tls.new_csrf_token(request)
        return super().new_csrf_token(request)
