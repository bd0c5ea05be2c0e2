"""TLS at the front proxy, against real HAProxy (deploy/haproxy/haproxy.cfg, with a self-signed
certificate), real waitress (production.ini's proxy trust) and real Redis: plain HTTP is
redirected, HTTPS answers carry HSTS, the app sees https (set by the proxy, never by the
client), its cookies are Secure, and a cross-origin POST over TLS is refused."""
import re
import uuid

import pytest

from tests.proxy import FrontProxy, behind_proxy_ini
from tests.servers import Web

pytestmark = pytest.mark.e2e

# What a client may claim about forwarding: the proxy drops all of it.
SPOOFED = {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "81",
           "Forwarded": "for=10.9.9.9;proto=http;host=evil.example"}


@pytest.fixture
def proxy(tmp_path, redis_server):
    web = Web(tmp_path, redis_server.url, ini=behind_proxy_ini(tmp_path))
    front = FrontProxy(tmp_path, {"web": f"127.0.0.1:{web.port}"}, tls=True)
    try:
        web.start()
        front.start()
        yield front
    finally:
        front.stop()
        web.stop()


def test_plain_http_is_redirected_to_https_and_queues_nothing(proxy, redis_client):
    for method, path in (("GET", "/healthz"), ("POST", "/comer/pan"), ("GET", "/ops")):
        status, headers, _ = proxy.request(method, path, tls=False)
        assert status == 308, (method, path, status, headers)
        assert headers["location"][0].startswith("https://127.0.0.1:") and headers["location"][0].endswith(path), headers
    assert redis_client.llen("dramatiq:comer") == 0


def test_https_answers_carry_hsts_and_the_app_sees_https_from_the_proxy_not_the_client(proxy):
    status, headers, _ = proxy.request("GET", "/healthz")
    assert status == 200 and re.fullmatch(r"max-age=\d{7,}", headers["strict-transport-security"][0]), headers
    # /ops/jobs?id= redirects with an absolute URL made from what the app sees of the request:
    # https, and the Host the client used, whatever X-Forwarded-* it sent.
    job_id = str(uuid.uuid4())
    status, headers, _ = proxy.request("GET", f"/ops/jobs?id={job_id}", headers=SPOOFED)
    assert status == 303, headers
    assert headers["location"] == [f"https://127.0.0.1:{proxy.tls_port}/ops/jobs/{job_id}"], headers


def test_cookies_set_over_https_are_secure(proxy):
    status, headers, _ = proxy.request("GET", "/ops", headers=SPOOFED)
    assert status == 200
    cookies = headers.get("set-cookie", [])
    assert any(cookie.startswith("csrf_token=") for cookie in cookies), headers
    status, headers, _ = proxy.request("GET", "/jobs/queues/comer", headers=SPOOFED)
    assert status == 200
    cookies += headers.get("set-cookie", [])
    assert any(cookie.startswith("__dd_csrf=") for cookie in cookies), cookies
    for cookie in cookies:
        attributes = [part.strip().lower() for part in cookie.split(";")[1:]]
        assert "secure" in attributes and "httponly" in attributes and "samesite=strict" in attributes, cookie


def ops_form(proxy):
    """The operations page's CSRF token and its cookie, fetched over HTTPS (the page's forms
    carry the cookie's value: Pyramid's cookie policy)."""
    status, headers, _ = proxy.request("GET", "/ops")
    assert status == 200
    cookie = next(c.split(";")[0] for c in headers["set-cookie"] if c.startswith("csrf_token="))
    return cookie.split("=", 1)[1], cookie


def test_a_cross_origin_post_over_tls_is_refused(proxy):
    token, cookie = ops_form(proxy)
    own = f"https://127.0.0.1:{proxy.tls_port}"

    def post(origin, **extra):
        headers = {"Cookie": cookie, "Origin": origin, "Content-Type": "application/x-www-form-urlencoded", **extra}
        return proxy.request("POST", "/ops/queues/comer/requeue-dead", headers=headers, body=f"csrf_token={token}")

    # Another site, the plain-HTTP origin, another port, a look-alike host; and another site
    # claiming through X-Forwarded-Host to be the host (the proxy drops that header).
    for origin, extra in (("https://evil.example", {}), (f"http://127.0.0.1:{proxy.tls_port}", {}),
                          ("https://127.0.0.1:8443", {}), ("https://127.0.0.1.evil.example", {}),
                          ("https://evil.example", {"X-Forwarded-Host": "evil.example"})):
        status, headers, body = post(origin, **extra)
        assert status == 403 and b"bad_csrf_origin" in body, (origin, status, body)
    # The page's own origin, with the same token, is taken.
    status, headers, _ = post(own)
    assert status == 303 and headers["location"] == [f"{own}/ops"], headers
