"""The HTTP contract: the OpenAPI document is true, fuzzing finds no 5xx, hostile input is refused."""
import json
import re
import socket
import subprocess
import time
from urllib.parse import quote, quote_from_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyramid.interfaces import IRoutesMapper

from tests.servers import BIN, Web, http

pytestmark = pytest.mark.e2e


def documented_paths(document):
    return {(path, method.upper()) for path, operations in document["paths"].items() for method in operations}


def route_paths(registry):
    """Every (path, method) the Pyramid routes answer, in OpenAPI's notation: the methods are
    those their views are registered for (a view for any method, the 405 answer, adds none;
    a route with only such a view, /comer without an item, answers GET and POST alike)."""
    methods = {}
    for entry in registry.introspector.get_category("views"):
        view = entry["introspectable"]
        if view["route_name"]:
            wanted = view["request_methods"]
            methods.setdefault(view["route_name"], set()).update([wanted] if isinstance(wanted, str) else wanted or ())
    paths = set()
    for route in registry.getUtility(IRoutesMapper).get_routes():
        if route.pattern.startswith("ops/static"):
            continue  # the console's CSS and scripts: files, not an API
        pattern = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.pattern)
        queues = ["comer", "beber"] if route.name.startswith("order") else [None]
        for queue in queues:
            for method in methods.get(route.name) or ("GET", "POST"):
                paths.add((pattern.replace("{queue}", queue) if queue else pattern, method))
    return paths


def test_every_route_is_in_the_openapi_document_and_nothing_else(app):
    document = app.get("/openapi.json").json
    assert document["openapi"].startswith("3.")
    router = app.app
    while not hasattr(router, "registry"):  # under the login and dashboard middleware
        router = router.app
    assert route_paths(router.registry) == documented_paths(document)


def test_schemathesis_finds_no_5xx_and_no_answer_the_document_does_not_describe(tmp_path, redis_server):
    web = Web(tmp_path, redis_server.url)
    try:
        web.start()
        result = subprocess.run(
            [BIN / "schemathesis", "run", f"{web.url}/openapi.json", "--max-examples", "25",
             "--generation-deterministic", "--request-timeout", "10",
             "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                         "response_headers_conformance,response_schema_conformance"],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        web.stop()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


# Built once for the hypothesis tests (fixtures are per test, examples are many).
@pytest.fixture
def hostile_app(app, redis_client):
    return app, redis_client


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(min_size=0, max_size=80))
def test_any_unicode_name_is_stored_exactly_or_refused_with_a_message(hostile_app, name):
    app, client = hostile_app
    response = app.get("/comer/" + quote(name.encode("utf-8", "surrogatepass"), safe=""), expect_errors=True)
    assert_answer(response, client, name)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(min_size=0, max_size=40))
def test_any_bytes_in_the_url_are_stored_exactly_or_refused(hostile_app, raw):
    app, client = hostile_app
    response = app.get("/beber/" + quote_from_bytes(raw, safe=""), expect_errors=True)
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        assert response.status_int == 400 and response.json["error"] == "bad_item"
        return
    assert_answer(response, client, name)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                      st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                   lambda children: st.lists(children, max_size=5)
                                   | st.dictionaries(st.sampled_from(["comer", "beber", "x"]), children, max_size=2),
                                   max_leaves=10).map(lambda value: json.dumps(value).encode())),
       content_type=st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", ""]),
       key=st.one_of(st.none(), st.text(alphabet=st.characters(max_codepoint=255), max_size=300)))
def test_any_menu_body_header_or_content_type_gets_202_or_a_4xx_message(hostile_app, body, content_type, key):
    app, client = hostile_app
    headers = {} if key is None else {"Idempotency-Key": key}
    response = app.post("/menu", body, content_type=content_type, headers=headers, expect_errors=True)
    assert response.status_int in (202, 400, 415, 422), response.text
    assert response.content_type == "application/json"
    if response.status_int == 202:
        for job in response.json["jobs"]:
            stored = app.get(job["status_url"]).json
            assert stored["args"] == [job["item"]]
    else:
        assert response.json["message"]


def assert_answer(response, client, name):
    assert response.status_int in (202, 400), (response.status, response.text)
    assert response.content_type == "application/json"
    if response.status_int == 202:
        job = response.json
        assert job["item"] == name
        assert json.loads(client.hget(f"foodapp:job:{job['job_id']}", "args")) == [name]
    else:
        assert response.json["error"] == "bad_item" and response.json["message"]


def test_a_body_over_the_limit_is_refused_by_waitress(tmp_path, redis_server):
    web = Web(tmp_path, redis_server.url)
    try:
        web.start()
        huge = json.dumps([{"comer": "pan"}] * 80000).encode()  # about 1.3 MB > max_request_body_size
        # Waitress answers 413 from the headers and closes while the body is still being
        # sent: a client like urllib then sees a broken pipe instead of the answer (a flaky
        # test). Send as far as waitress lets us, then read what it answered.
        with socket.create_connection(("127.0.0.1", web.port), timeout=30) as sock:
            sock.sendall(b"POST /menu HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(huge))
            try:
                for start in range(0, len(huge), 65536):
                    sock.sendall(huge[start:start + 65536])
            except (BrokenPipeError, ConnectionResetError):
                pass  # waitress answered and closed: read the answer below
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except ConnectionResetError:
                pass
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert redis_server.client().dbsize() == 0
    finally:
        web.stop()


def test_an_idle_connection_is_closed_after_channel_timeout(tmp_path, redis_server):
    web = Web(tmp_path, redis_server.url)
    try:
        web.start()
        with socket.create_connection(("127.0.0.1", web.port), timeout=30) as sock:
            sock.sendall(b"GET /comer/pan HTTP/1.1\r\nHost: x\r\n")  # and then nothing
            started = time.monotonic()
            assert sock.recv(1024) == b"", "waitress kept an idle half-sent request open"
            print(f"\nidle connection closed after {time.monotonic() - started:.1f} s (channel_timeout 3 s)")
        assert redis_server.client().dbsize() == 0
    finally:
        web.stop()


def test_the_document_publishes_the_limits_of_the_settings_the_app_was_built_with(redis_server, monkeypatch):
    from tests.conftest import make_app

    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    app = make_app(**{"orders.max_item_length": "7", "orders.max_batch": "3", "orders.max_delay_seconds": "90",
                      "orders.idempotency_ttl": "120", "jobs.status_ttl": "600"})
    document = app.get("/openapi.json").json
    for path in ("/comer/{item}", "/beber/{item}"):
        operation = document["paths"][path]["get"]
        parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
        assert parameters["item"]["schema"]["pattern"].endswith("{1,7}$")
        assert "(7)" in parameters["item"]["description"]
        assert parameters["delay"]["schema"]["maximum"] == 90
        assert "120 s" in parameters["Idempotency-Key"]["description"]
    menu = document["components"]["schemas"]["Menu"]
    assert menu["maxItems"] == 3
    assert all(choice["properties"][queue]["pattern"].endswith("{1,7}$")
               for choice, queue in zip(menu["items"]["oneOf"], ("comer", "beber")))
    assert "600 s" in document["paths"]["/api/jobs/{job_id}"]["get"]["summary"]
    text = json.dumps(document)
    for default in ("{1,64}", "604800", "86400"):
        assert default not in text, f"{default} is a default, not this app's setting"

    # And the app enforces what it publishes.
    assert app.get("/comer/" + "x" * 8, status=400).json["error"] == "bad_item"
    app.get("/comer/" + "x" * 7, status=202)
    app.get("/comer/pan?delay=91", status=400)
    app.post_json("/menu", [{"comer": "pan"}] * 4, status=400)
    app.post_json("/menu", [{"comer": "pan"}] * 3, status=202)
