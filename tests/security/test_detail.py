"""/readyz and /metrics show addresses, errors and counts only to the internal network or
with the detail token; anyone else gets a bare status (which is all a health check needs)."""
import pytest

from foodapp.settings import SettingsError, from_ini
from tests import conftest
from tests.conftest import make_app
from tests.servers import TESTING_INI, Web, free_port, http

TOKEN = "s3cret-detail-token"
OUTSIDE = {"REMOTE_ADDR": "203.0.113.9"}
INSIDE = {"REMOTE_ADDR": "127.0.0.1"}


@pytest.fixture
def detail_app(redis_server, monkeypatch):
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    monkeypatch.setenv("FOODAPP_DETAIL_TOKEN", TOKEN)
    return make_app(**{"security.internal_networks": "127.0.0.0/8 ::1/128 10.20.0.0/16"})


def test_readyz_is_bare_outside_and_detailed_inside(detail_app, redis_server):
    bare = detail_app.get("/readyz", status=200, extra_environ=OUTSIDE).json
    assert set(bare) == {"ready", "message"} and bare["ready"] is True
    assert str(redis_server.port) not in str(bare) and "internal" in bare["message"]
    for environ, headers in ((INSIDE, {}), ({"REMOTE_ADDR": "10.20.3.4"}, {}),
                             (OUTSIDE, {"Authorization": f"Bearer {TOKEN}"})):
        full = detail_app.get("/readyz", status=200, extra_environ=environ, headers=headers).json
        assert full["redis"]["master"].endswith(f":{redis_server.port}"), (environ, full)
    wrong = detail_app.get("/readyz", status=200, extra_environ=OUTSIDE, headers={"Authorization": "Bearer guess"}).json
    assert set(wrong) == {"ready", "message"}


def test_readyz_hides_the_error_of_a_redis_that_is_down(monkeypatch):
    port = free_port()
    monkeypatch.setenv("FOODAPP_REDIS_URL", f"redis://127.0.0.1:{port}/0")
    app = make_app()
    bare = app.get("/readyz", status=503, extra_environ=OUTSIDE)
    assert bare.headers["Retry-After"] == "1"
    assert bare.json["ready"] is False and str(port) not in bare.text and "refused" not in bare.text.lower()
    full = app.get("/readyz", status=503, extra_environ=INSIDE).json
    assert str(port) in full["reason"]


def test_metrics_are_for_the_internal_network_or_the_token(detail_app):
    refused = detail_app.get("/metrics", status=403, extra_environ=OUTSIDE)
    assert refused.json["error"] == "internal_only"
    assert "security.internal_networks" in refused.json["message"] and "203.0.113.9" in refused.json["message"]
    assert "foodapp_queue_depth" in detail_app.get("/metrics", status=200, extra_environ=INSIDE).text
    assert "foodapp_queue_depth" in detail_app.get("/metrics", status=200, extra_environ=OUTSIDE,
                                                   headers={"Authorization": f"Bearer {TOKEN}"}).text


def test_the_detail_token_comes_from_the_environment_only():
    with pytest.raises(SettingsError, match="FOODAPP_DETAIL_TOKEN"):
        from_ini(conftest.testing_settings(**{"security.detail_token": "written-in-the-ini"}), environ={})
    with pytest.raises(SettingsError, match="CIDR"):
        from_ini(conftest.testing_settings(**{"security.internal_networks": "not-a-network"}), environ={})


def test_through_waitress_a_client_outside_the_internal_networks_sees_a_bare_status(tmp_path, redis_server):
    ini = tmp_path / "outside.ini"
    ini.write_text(TESTING_INI.read_text().replace(
        "dashboard.login_required = false", "dashboard.login_required = false\nsecurity.internal_networks = 192.0.2.0/24"))
    web = Web(tmp_path, redis_server.url, ini=ini, env={"FOODAPP_DETAIL_TOKEN": TOKEN}).start()
    try:
        status, _, body = http("GET", f"{web.url}/readyz")
        assert status == 200 and set(body) == {"ready", "message"}  # what a health check needs: the status
        status, _, body = http("GET", f"{web.url}/readyz", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and body["redis"]["role"] == "master"
        assert http("GET", f"{web.url}/metrics")[0] == 403
        assert http("GET", f"{web.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
    finally:
        web.stop()
