"""Ways around the login, tried against real waitress: other spellings of the protected paths
(case, slashes, percent-encoding, dot segments, path parameters) and other methods. Each
must meet the login (401) or nothing at all (404, 405), never a page or an action."""
import http.client

import pytest

from foodapp.security import hash_password
from tests.servers import TESTING_INI, Web

PATHS = [
    "/ops", "/ops/", "//ops", "/ops//", "/OPS", "/Ops", "/%6fps", "/%6Fps/", "/ops%2F", "/./ops", "/x/../ops",
    "/ops;x", "/ops?x=1", "/ops#x", "/jobs", "/jobs/", "//jobs/", "/JOBS/", "/%6aobs/", "/jobs/./", "/jobs/%2e/",
    "/jobs/queues/comer", "/jobs//queues/comer", "/jobs/queues/comer/failed", "/ops/jobs/x", "/ops/queues/comer/requeue-dead",
    "/jobs/delete-message", "/jobs/requeue-message", "/reports", "/reports/", "//reports", "/%72eports",
]
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get"]


@pytest.fixture(scope="module")
def protected_web(tmp_path_factory):
    from tests.servers import RedisServer

    tmp = tmp_path_factory.mktemp("bypass")
    redis_server = RedisServer(tmp).start()
    ini = tmp / "login.ini"
    # Failed attempts are limited per address (test_login.py): here every try comes from 127.0.0.1.
    ini.write_text(TESTING_INI.read_text().replace(
        "dashboard.login_required = false", "dashboard.login_required = true\ndashboard.login_max_failures = 100000"))
    web = Web(tmp, redis_server.url, ini=ini, env={
        "FOODAPP_DASHBOARD_USERNAME": "jefe", "FOODAPP_DASHBOARD_PASSWORD_HASH": hash_password("cocina secreta", n=2 ** 10)})
    try:
        yield web.start()
    finally:
        web.stop()
        redis_server.stop()


def raw(web, method, path, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", "0")
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("method", METHODS)
def test_no_spelling_or_method_gets_past_the_login(protected_web, method):
    passed = {}
    for path in PATHS:
        status, body = raw(protected_web, method, path)
        if status not in (400, 401, 404, 405) or b"Operations" in body or b"Dashboard" in body:
            passed[path] = (status, body[:120])
    assert not passed, passed


@pytest.mark.parametrize("authorization", [
    "Basic", "Basic ", "Basic ====", "Basic amVmZQ==", "basic amVmZTpjb2NpbmEgc2VjcmV0YQ==",
    "Basic amVmZTpjb2NpbmEgc2VjcmV0YQ", "Bearer amVmZTpjb2NpbmEgc2VjcmV0YQ==", "Basic OmNvY2luYSBzZWNyZXRh",
    "Basic SkVGRTpjb2NpbmEgc2VjcmV0YQ==", "Basic amVmZSA6Y29jaW5hIHNlY3JldGE=",
])
def test_no_malformed_or_near_miss_credentials_get_in(protected_web, authorization):
    # jefe (no password), lower-case scheme, no padding, another scheme, no user, JEFE, "jefe ".
    status, _ = raw(protected_web, "GET", "/ops", {"Authorization": authorization})
    assert status == 401


def test_the_right_credentials_do_get_in(protected_web):
    status, body = raw(protected_web, "GET", "/ops", {"Authorization": "Basic amVmZTpjb2NpbmEgc2VjcmV0YQ=="})
    assert status == 200 and b"Operations" in body
