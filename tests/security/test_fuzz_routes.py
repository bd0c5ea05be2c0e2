"""A fuzz of every route the app answers, the console's and the dashboard's included.

The routes are read from the running app's route table (so a route added later is fuzzed
without anybody remembering to list it); each placeholder gets hostile text, and each request
a random method, body, content type and headers (a CSRF token that is wrong or missing, a
foreign Origin). Whatever comes in, the answer is never a 5xx nor a traceback, and says what
went wrong in a form the client can read: JSON with ``error`` and ``message``, or an HTML page.
With the login on, nothing behind it answers anything but 401 (or the logout's own answer).
"""
import re
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyramid.interfaces import IRoutesMapper

from tests.security.test_login import PASSWORD, USER, login_app
from tests.servers import Web, http

PLACEHOLDER = re.compile(r"\{(\w+)(?::[^}]*)?\}")
UUID = "0b9d7a7e-5b1f-4c1e-9a51-6f5d8c3e2a10"
DASHBOARD_PATHS = ["/jobs", "/jobs/", "/jobs/queues/{x}", "/jobs/queues/{x}/delete/{x}", "/jobs/queues/{x}/requeue/{x}",
                   "/jobs/queues/{x}/delete-all", "/jobs/queues/{x}/requeue-all", "/jobs/queues/{x}/{x}",
                   "/jobs/static/{x}"]
SEGMENTS = st.one_of(
    st.sampled_from(["comer", "beber", "batch", "comer.DQ", UUID, "", ".", "..", "%2e%2e", "0", "-1", "9" * 30]),
    st.text(max_size=40).map(lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="")),
    st.binary(max_size=20).map(lambda raw: quote(raw, safe="")),
)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"{}", b"[]", b"null", b'{"confirm": "comer"}', b'{"action": "cancel", "ids": []}',
                     b'{"ids": [' + b"1," * 2000 + b"1]}", b"[" * 5000 + b"]" * 5000, b"csrf_token=x&id=1"]),
    st.text(max_size=200).map(str.encode),
)
CONTENT_TYPES = st.sampled_from(["application/json", "application/x-www-form-urlencoded", "multipart/form-data",
                                 "text/plain", "", "application/json; charset=latin-1"])


def route_patterns(app):
    router = app.app
    while not hasattr(router, "registry"):  # under the login and dashboard middleware
        router = router.app
    patterns = [route.pattern for route in router.registry.getUtility(IRoutesMapper).get_routes()
                if not route.pattern.startswith("ops/static")]
    return sorted({pattern if pattern.startswith("/") else "/" + pattern for pattern in patterns} | set(DASHBOARD_PATHS))


def fill(pattern, draw):
    return PLACEHOLDER.sub(lambda _: draw(SEGMENTS), pattern.replace("{x}", "{x:}"))


@pytest.fixture
def routes(app):
    return app, route_patterns(app)


def assert_readable(response, request):
    assert response.status_int < 500, (request, response.status, response.text[:2000])
    text = response.text if response.content_type and response.content_type.startswith(("text/", "application/json")) else ""
    assert "Traceback" not in text, (request, text[:2000])
    if request[0] != "HEAD" and response.content_type == "application/json" and response.status_int >= 400:
        body = response.json
        assert isinstance(body, dict) and body.get("error") and body.get("message"), (request, body)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data(), method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
       body=BODIES, content_type=CONTENT_TYPES,
       token=st.one_of(st.none(), st.text(max_size=40)), origin=st.sampled_from([None, "http://evil.example", "null"]),
       query=st.one_of(st.just(""), st.text(max_size=60).map(lambda text: "?" + quote(text, safe="=&"))))
def test_no_route_answers_a_5xx_or_a_traceback_to_anything(routes, data, method, body, content_type, token, origin, query):
    app, patterns = routes
    path = fill(data.draw(st.sampled_from(patterns)), data.draw) + query
    headers = {"Content-Type": content_type} if content_type else {}
    if token is not None:
        headers["X-CSRF-Token"] = token.encode("utf-8", "replace").decode("latin-1")
    if origin:
        headers["Origin"] = origin
    request = (method, path, body[:80], headers)
    app.cookiejar.clear()  # webtest's cookie matching cannot decode a path that is not UTF-8
    response = app.request(path, method=method, body=body if method not in ("GET", "HEAD") else b"",
                           headers=headers, expect_errors=True)
    assert_readable(response, request)


@pytest.fixture
def guarded(redis_server, monkeypatch):
    app = login_app(redis_server, monkeypatch)
    return app, [pattern for pattern in route_patterns(app)
                 if pattern.startswith(("/ops", "/jobs", "/reports")) and pattern != "/logout"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]), body=BODIES,
       credentials=st.sampled_from([None, (USER, "wrong"), ("", ""), ("intruso", PASSWORD)]))
def test_behind_the_login_every_route_is_a_401_without_the_password(guarded, data, method, body, credentials):
    app, patterns = guarded
    path = fill(data.draw(st.sampled_from(patterns)), data.draw)
    app.authorization = ("Basic", credentials) if credentials else None
    # From many addresses: the failed-login limit (429) is tested on its own.
    address = f"198.51.100.{data.draw(st.integers(1, 250))}"
    response = app.request(path, method=method, body=body if method != "GET" else b"", expect_errors=True,
                           environ={"REMOTE_ADDR": address})
    assert response.status_int in (401, 429), (method, path, response.status, response.text[:500])
    # 429: ten failed logins from one drawn address (foodapp.security's own limit's name).
    assert response.json["error"] in ("login_required", "too_many_login_failures") and response.json["message"]


def plausible(placeholder):
    """A value a route's placeholder takes: its first alternative, a UUID for an id, else a queue."""
    name, regex = re.match(r"\{(\w+)(?::([^}]*))?\}", placeholder.group(0)).groups()
    if regex and "|" in regex:
        return regex.split("|")[0]
    return UUID if name.endswith("_id") else "comer"


@pytest.mark.e2e
def test_every_route_answers_a_form_that_cannot_parse_with_a_4xx(routes, tmp_path, redis_server):
    # multipart/form-data with no boundary, through real waitress (webtest's requests do not
    # reach the parser the same way): with no X-CSRF-Token header, Pyramid's CSRF check
    # reads the form, and its parser raises; each console POST once answered that with a 500.
    _, patterns = routes
    web = Web(tmp_path, redis_server.url).start()
    try:
        for pattern in patterns:
            path = PLACEHOLDER.sub(plausible, pattern)
            status, headers, body = http("POST", web.url + path, body=b'{"action": "cancel", "ids": []}',
                                         headers={"Content-Type": "multipart/form-data"})
            assert status < 500, (path, status, body)
            assert "Traceback" not in str(body), (path, body)
    finally:
        web.stop()
