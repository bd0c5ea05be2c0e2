"""Redis answering with a refusal is not Redis being down: a user the ACL does not allow a
command, or a wrong password, must not read "did not answer, try again later" (a client
would retry for ever); it is a configuration error that names what to fix."""
from tests.conftest import make_app


def _app_as(redis_server, monkeypatch, user, password):
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    monkeypatch.setenv("FOODAPP_REDIS_PASSWORD", password)
    return make_app(**{"redis.username": user})


def test_a_command_the_acl_refuses_is_a_500_naming_the_acl_not_a_503(redis_server, redis_client, monkeypatch):
    # Everything but scripts: every order is one script call.
    redis_client.execute_command("ACL", "SETUSER", "narrow", "on", ">secret", "~*", "&*", "+@all",
                                 "-evalsha", "-eval")
    app = _app_as(redis_server, monkeypatch, "narrow", "secret")
    answer = app.get("/comer/platano", status=500).json
    assert answer["error"] == "redis_refused", answer
    assert "NOPERM" in answer["message"] and "narrow" in answer["message"], answer
    assert "ACL" in answer["message"] and "deploy/redis/users.acl" in answer["message"], answer
    assert "try again later" not in answer["message"].lower(), answer


def test_a_wrong_redis_password_is_a_500_naming_the_setting(redis_server, redis_client, monkeypatch):
    redis_client.execute_command("ACL", "SETUSER", "app", "on", ">right", "~*", "&*", "+@all")
    app = _app_as(redis_server, monkeypatch, "app", "wrong")
    answer = app.get("/api/jobs/00000000-0000-0000-0000-000000000000", status=500).json
    assert answer["error"] == "redis_login_failed", answer
    assert "FOODAPP_REDIS_PASSWORD" in answer["message"] and "redis.username" in answer["message"], answer
    assert "try again later" not in answer["message"].lower(), answer
    # An order too: not retried as if Redis were failing over (enqueue.retry_seconds), and
    # not a 503 that says "send again".
    order = app.get("/comer/platano", status=500).json
    assert order["error"] == "redis_login_failed" and "Nothing was done" in order["message"], order

