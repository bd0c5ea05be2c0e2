"""The dashboard's login: no user-name probing, a limit on failed attempts, a logout."""
import hashlib

import pytest

from foodapp.security import hash_password
from tests.conftest import make_app

USER, PASSWORD = "jefe", "cocina secreta"


def login_app(redis_server, monkeypatch, **settings):
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    monkeypatch.setenv("FOODAPP_DASHBOARD_USERNAME", USER)
    monkeypatch.setenv("FOODAPP_DASHBOARD_PASSWORD_HASH", hash_password(PASSWORD, n=2 ** 10))
    return make_app(**{"dashboard.login_required": "true", **settings})


@pytest.fixture
def scrypt_calls(monkeypatch):
    calls = []
    real = hashlib.scrypt

    def counting(*args, **kwargs):
        calls.append(kwargs.get("salt"))
        return real(*args, **kwargs)
    monkeypatch.setattr(hashlib, "scrypt", counting)
    return calls


def test_a_wrong_user_name_costs_the_same_scrypt_check_as_a_wrong_password(redis_server, monkeypatch, scrypt_calls):
    app = login_app(redis_server, monkeypatch)
    stored_salt = None
    for user, password in (("intruso", PASSWORD), (USER, "mal"), ("intruso", "mal"), ("", "")):
        before = len(scrypt_calls)
        app.authorization = ("Basic", (user, password))
        answer = app.get("/ops", status=401, extra_environ={"REMOTE_ADDR": f"192.0.2.{len(scrypt_calls)}"})
        assert answer.json["error"] == "login_required"
        # One scrypt run, with the stored hash's own salt (so with its cost), whoever the user is.
        assert len(scrypt_calls) - before == 1, (user, password)
        stored_salt = stored_salt or scrypt_calls[-1]
        assert scrypt_calls[-1] == stored_salt
    app.authorization = ("Basic", (USER, PASSWORD))
    assert app.get("/ops", status=200)


def test_failed_logins_are_limited_per_client_address(redis_server, redis_client, monkeypatch):
    app = login_app(redis_server, monkeypatch, **{"dashboard.login_max_failures": "3",
                                                  "dashboard.login_failure_window": "120"})
    attacker, other = {"REMOTE_ADDR": "198.51.100.7"}, {"REMOTE_ADDR": "198.51.100.8"}
    app.authorization = ("Basic", (USER, "mal"))
    for _ in range(3):
        app.get("/jobs/", status=401, extra_environ=attacker)
    # The fourth try is refused before any password check, even with the right password.
    for credentials in ((USER, "mal"), (USER, PASSWORD)):
        app.authorization = ("Basic", credentials)
        refused = app.get("/ops", status=429, extra_environ=attacker)
        assert refused.json["error"] == "too_many_login_failures"
        retry_after = int(refused.headers["Retry-After"])
        assert 0 < retry_after <= 120
        assert f"{retry_after} s" in refused.json["message"] and "198.51.100.7" in refused.json["message"]
    # The counter lives in Redis with a TTL, so it ends by itself and is shared by every web process.
    key = "foodapp:login-failures:198.51.100.7"
    assert 0 < redis_client.ttl(key) <= 120
    # Another address is not affected, and a prompt without credentials is not a failure.
    app.authorization = None
    for _ in range(5):
        app.get("/ops", status=401, extra_environ=other)
    app.authorization = ("Basic", (USER, PASSWORD))
    app.get("/ops", status=200, extra_environ=other)
    # When the window is over, the attacker's address may try again.
    redis_client.delete(key)
    app.get("/ops", status=200, extra_environ=attacker)


def test_logout_makes_the_browser_forget_the_credentials(redis_server, monkeypatch):
    app = login_app(redis_server, monkeypatch)
    app.authorization = ("Basic", (USER, PASSWORD))
    app.get("/ops", status=200)
    out = app.get("/logout", status=401)
    assert out.headers["WWW-Authenticate"].startswith('Basic realm="foodapp"')
    assert out.json["error"] == "logged_out" and "Cancel" in out.json["message"]
    assert out.headers["Cache-Control"] == "no-store"


def test_without_a_login_there_is_no_logout(app):
    assert app.get("/logout", status=404).json["error"] == "not_found"


def test_ipv6_clients_are_counted_by_their_64_network_and_a_success_clears_the_count(redis_server, redis_client,
                                                                                     monkeypatch):
    app = login_app(redis_server, monkeypatch, **{"dashboard.login_max_failures": "2"})
    app.authorization = ("Basic", (USER, "mal"))
    # One host has a whole /64 to pick addresses from: a new address is not a new client.
    app.get("/ops", status=401, extra_environ={"REMOTE_ADDR": "2001:db8:1:2::a"})
    app.get("/ops", status=401, extra_environ={"REMOTE_ADDR": "2001:db8:1:2::b"})
    app.get("/ops", status=429, extra_environ={"REMOTE_ADDR": "2001:db8:1:2:ffff::c"})
    assert redis_client.exists("foodapp:login-failures:2001:db8:1:2::/64")
    # A mistyped password, then the right one: the count starts again.
    app.get("/ops", status=401, extra_environ={"REMOTE_ADDR": "198.51.100.9"})
    app.authorization = ("Basic", (USER, PASSWORD))
    app.get("/ops", status=200, extra_environ={"REMOTE_ADDR": "198.51.100.9"})
    assert not redis_client.exists("foodapp:login-failures:198.51.100.9")
