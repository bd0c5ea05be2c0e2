"""The operations page, the login, CSRF, security headers and the audit log (WebTest)."""
import re
import time

import dramatiq
import pytest

from foodapp.security import hash_password
from tests.conftest import drain, make_app

XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


def test_the_ops_page_shows_queues_workers_and_redis(app, broker, worker, redis_client):
    app.get("/comer/pan", status=202)
    drain(broker, worker)
    worker.pause()
    app.get("/beber/vino", status=202)
    # A worker that stopped beating 60 s ago (and was not swept yet): shown dead, not alive.
    redis_client.zadd("dramatiq:__heartbeats__", {"ghost": int((time.time() - 60) * 1000)})
    redis_client.hset("foodapp:worker:ghost", mapping={"name": "hostB:4242", "queues": "comer beber"})
    page = app.get("/ops", status=200)
    worker.resume()

    queues = {m[0]: int(m[1]) for m in re.findall(
        r'data-queue="(\w+)">(?:(?!</tr>).)*?class="queued num">(\d+)', page.text, re.S)}
    assert queues == {"batch": 0, "beber": 1, "comer": 0}
    # The workers' counts (the Workers page lists them): this test's worker alive, the ghost dead.
    workers = re.search(r'id="stat-workers">.*?(\d+) alive.*?(\d+) late, (\d+) dead', page.text, re.S)
    assert workers.groups() == ("1", "0", "1")
    assert "comer:done: 1" in page.text
    assert "127.0.0.1:" in page.text
    # Live by script (fetch), never by reloading the page, which wiped what was being typed.
    assert 'http-equiv="refresh"' not in page.text and '<script src="/ops/static/overview.js" defer>' in page.text
    assert "<script>" not in page.text and " style=" not in page.text


def test_a_jobs_page_has_its_timeline_and_result_and_the_search_opens_it(app, broker, worker):
    job = app.get("/comer/tomate", status=202).json
    drain(broker, worker)
    found = app.get("/ops/jobs", params={"id": job["job_id"]}, status=303)
    page = found.follow(status=200)
    assert "tomate" in page.text and 'class="state">done' in page.text
    assert [e for e in ("queued", "started", "done") if f"<td>{e}</td>" in page.text] == ["queued", "started", "done"]
    assert job["status_url"] in page.text
    assert app.get("/ops/jobs", params={"id": "nope"}, status=400)
    assert app.get("/ops/jobs/7a2d2b8e-3bf0-4f0a-9d1e-4c2b5e8f1a00", status=404)


def dead_letter(broker, worker, item):
    def broken(item):
        raise ValueError("no")
    if "broken" not in broker.actors:
        dramatiq.Actor(broken, broker=broker, actor_name="broken", queue_name="comer", priority=0,
                       options={"max_retries": 0})
    message = broker.get_actor("broken").send(item)
    drain(broker, worker)
    return message


def test_requeueing_all_dead_letters_needs_the_pages_csrf_token_and_is_audited(app, broker, worker, redis_client):
    dead_letter(broker, worker, "piedra")
    dead_letter(broker, worker, "arena")
    assert redis_client.zcard("dramatiq:comer.XQ") == 2

    # A cross-site form: no token (and no cookie) -> refused, nothing moves.
    refused = app.post("/ops/queues/comer/requeue-dead", {"csrf_token": "guess"}, status=403)
    assert refused.json["error"] == "bad_csrf_token"
    assert redis_client.zcard("dramatiq:comer.XQ") == 2

    page = app.get("/ops")
    form = next(f for f in page.forms.values() if f.action.endswith("/comer/requeue-dead"))
    assert "Requeue all 2 dead letters" in page.text
    # No worker takes them meanwhile: the requeued jobs fail again at once and would be dead
    # letters again before the count below (seen in CI).
    worker.stop()
    form.submit(status=303)
    assert redis_client.zcard("dramatiq:comer.XQ") == 0
    assert redis_client.llen("dramatiq:comer") == 2
    audit = app.get("/ops").text
    assert "requeue all dead letters" in audit and "queue=comer" in audit and "count=2" in audit


def test_every_page_sends_the_security_headers(app):
    for path in ("/ops", "/jobs/", "/comer/pan", "/api/jobs/7a2d2b8e-3bf0-4f0a-9d1e-4c2b5e8f1a00"):
        response = app.get(path, expect_errors=True)
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("item", XSS)
def test_markup_in_item_names_is_escaped_on_every_page(app, broker, worker, item):
    message = broker.get_actor("comer").send(item)
    drain(broker, worker)
    for path in (f"/ops/jobs/{message.message_id}", "/ops", "/jobs/queues/comer"):
        text = app.get(path).text
        assert item not in text
    assert "&lt;script&gt;" in app.get(f"/ops/jobs/{message.message_id}").text or "&#34;&gt;&lt;img" in \
        app.get(f"/ops/jobs/{message.message_id}").text


@pytest.fixture
def production_login(redis_server, monkeypatch):
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    monkeypatch.setenv("FOODAPP_DASHBOARD_USERNAME", "jefe")
    monkeypatch.setenv("FOODAPP_DASHBOARD_PASSWORD_HASH", hash_password("cocina secreta", n=2 ** 10))
    return make_app(**{"dashboard.login_required": "true"})


def test_the_dashboard_and_ops_page_need_a_login_in_production(production_login):
    app = production_login
    for path in ("/jobs/", "/ops", "/ops/jobs/7a2d2b8e-3bf0-4f0a-9d1e-4c2b5e8f1a00"):
        anonymous = app.get(path, status=401)
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
        assert anonymous.json["error"] == "login_required"
    app.post("/ops/queues/comer/requeue-dead", status=401)
    app.authorization = ("Basic", ("jefe", "wrong"))
    app.get("/ops", status=401)
    app.authorization = ("Basic", ("intruso", "cocina secreta"))
    app.get("/ops", status=401)
    app.authorization = ("Basic", ("jefe", "cocina secreta"))
    assert "Operations" in app.get("/ops", status=200).text
    assert app.get("/jobs/", status=200)
    # The API stays open: orders are not behind the dashboard's login.
    app.authorization = None
    app.get("/comer/pan", status=202)


def test_login_required_without_credentials_is_a_clear_error(redis_server, monkeypatch):
    from foodapp.settings import SettingsError

    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    with pytest.raises(SettingsError, match="FOODAPP_DASHBOARD_PASSWORD_HASH"):
        make_app(**{"dashboard.login_required": "true"})


def test_the_dashboards_own_actions_are_audited(app, broker, worker, redis_client):
    message = dead_letter(broker, worker, "ladrillo")
    rid = redis_client.zrange("dramatiq:comer.XQ", 0, -1)[0]
    page = app.get(f"/jobs/queues/comer/failed/{rid}")
    token = re.search(r'name="__dd_csrf" value="(\w+)"', page.text).group(1)
    app.post("/jobs/requeue-message", {"__dd_csrf": token, "queue": "comer.XQ", "id": rid}, status=302)
    audit = redis_client.lrange("foodapp:audit", 0, -1)
    assert any('"dashboard requeue"' in entry and message.message_id in entry for entry in audit), audit


def test_a_cross_site_post_to_the_dashboards_actions_is_refused(app, broker, worker, redis_client):
    dead_letter(broker, worker, "cemento")
    rid = redis_client.zrange("dramatiq:comer.XQ", 0, -1)[0]
    # What a page on another site can send: the form fields, but not the token it cannot read.
    app.post("/jobs/delete-message", {"queue": "comer.XQ", "id": rid}, status=403)
    app.post("/jobs/requeue-message", {"__dd_csrf": "guess", "queue": "comer.XQ", "id": rid}, status=403)
    assert redis_client.zcard("dramatiq:comer.XQ") == 1
    assert redis_client.llen("foodapp:audit") == 0
