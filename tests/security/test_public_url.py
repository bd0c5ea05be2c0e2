"""status_url and Location come from app.public_url, or are relative: never from the request's
Host header, so a client cannot make foodapp hand out a URL of its choosing, and an idempotent
replay never gives a second client the URL another client's Host made. Real waitress, real Redis."""
import pytest

from foodapp.settings import SettingsError, from_ini
from tests.servers import Web, http

pytestmark = pytest.mark.e2e

HOSTS = ("evil.example", "other.example:8443")


def order_from(web, host, key):
    status, headers, body = http("POST", f"{web.url}/comer/pan", headers={"Host": host, "Idempotency-Key": key})
    assert status == 202, body
    return headers, body


def test_without_public_url_the_urls_are_relative_whatever_the_host(tmp_path, redis_server):
    web = Web(tmp_path, redis_server.url, env={"FOODAPP_APP_PUBLIC_URL": ""})
    try:
        web.start()
        (first_headers, first), (again_headers, again) = (order_from(web, host, "same-key") for host in HOSTS)
        assert again["job_id"] == first["job_id"] and again_headers.get("Idempotent-Replayed") == "true"
        for headers, body in ((first_headers, first), (again_headers, again)):
            assert body["status_url"] == f"/api/jobs/{first['job_id']}", body
            assert headers["Location"] == body["status_url"], headers
        # A menu's batch URL too; and the relative URL works against the address the client used.
        status, headers, menu = http("POST", f"{web.url}/menu", headers={"Host": HOSTS[0], "Content-Type": "application/json"},
                                     body=b'[{"comer": "pan"}, {"beber": "agua"}]')
        assert status == 202 and menu["status_url"].startswith("/api/") and headers["Location"] == menu["status_url"]
        assert all(job["status_url"].startswith("/api/jobs/") for job in menu["jobs"]), menu
        assert http("GET", web.url + first["status_url"])[0] == 200
    finally:
        web.stop()


def test_with_public_url_every_client_gets_that_base_whatever_its_host(tmp_path, redis_server):
    web = Web(tmp_path, redis_server.url, env={"FOODAPP_APP_PUBLIC_URL": "https://food.example.com/"})
    try:
        web.start()
        (first_headers, first), (again_headers, again) = (order_from(web, host, "key-2") for host in HOSTS)
        assert again["job_id"] == first["job_id"] and again_headers.get("Idempotent-Replayed") == "true"
        expected = f"https://food.example.com/api/jobs/{first['job_id']}"
        assert first["status_url"] == again["status_url"] == expected
        assert first_headers["Location"] == again_headers["Location"] == expected
        # X-Forwarded-Host from an untrusted client changes nothing either.
        _, forwarded = http("GET", f"{web.url}/beber/agua", headers={"X-Forwarded-Host": "evil.example"})[1:]
        assert forwarded["status_url"].startswith("https://food.example.com/api/jobs/"), forwarded
    finally:
        web.stop()


@pytest.mark.parametrize("value", ["food.example.com", "ftp://food.example.com", "https://food.example.com/app",
                                   "https://food.example.com?x=1", "https://user:pw@food.example.com", "https://"])
def test_a_public_url_that_is_not_a_scheme_and_host_is_refused_with_an_example(value):
    with pytest.raises(SettingsError, match=r"app.public_url.*e\.g\. https://food\.example\.com"):
        from_ini({"app.public_url": value}, environ={})
