"""dramatiq-dashboard under attack: its front page must not run KEYS, its actions need
foodapp's own CSRF check (token and same origin), and ambiguous forms are refused."""
import json
import re
import time

import pytest

from tests.test_ops import dead_letter

ORIGIN = "http://localhost:80"  # webtest's requests go to http://localhost


def keys_calls(client):
    return client.info("commandstats").get("cmdstat_keys", {}).get("calls", 0)


def test_the_front_page_runs_no_keys_and_lists_queues_and_workers(app, redis_client):
    # Three workers with heartbeats, one holding a job: dramatiq-dashboard's Lua runs one
    # KEYS over the whole keyspace per worker to count what they hold.
    now = int(time.time() * 1000)
    for n in range(3):
        redis_client.zadd("dramatiq:__heartbeats__", {f"w{n}": now})
        redis_client.hset(f"foodapp:worker:w{n}", mapping={"name": f"hostB:424{n}", "queues": "comer beber"})
    redis_client.sadd("dramatiq:__acks__.w1.comer", "some-message-id")
    app.get("/comer/pan", status=202)

    before = keys_calls(redis_client)
    page = app.get("/jobs/", status=200)
    assert keys_calls(redis_client) == before, "the dashboard's front page ran KEYS"
    assert {"comer", "beber", "batch"} <= set(re.findall(r'href="/jobs/queues/(\w+)"', page.text))
    rows = dict(re.findall(r"(hostB:424\d)\s*</td>\s*<td[^>]*>\s*(\d+)", page.text))
    assert rows == {"hostB:4240": "0", "hostB:4241": "1", "hostB:4242": "0"}, page.text


@pytest.fixture
def dead(app, broker, worker, redis_client):
    """Two dead letters of comer, and a page's CSRF token (its cookie is in app's jar)."""
    first, second = dead_letter(broker, worker, "ladrillo"), dead_letter(broker, worker, "cemento")
    rids = {json.loads(redis_client.hget("dramatiq:comer.XQ.msgs", rid))["message_id"]: rid
            for rid in redis_client.zrange("dramatiq:comer.XQ", 0, -1)}
    page = app.get(f"/jobs/queues/comer/failed/{rids[first.message_id]}", status=200)
    token = re.search(r'name="__dd_csrf" value="(\w+)"', page.text).group(1)
    return {"token": token, "first": (first.message_id, rids[first.message_id]),
            "second": (second.message_id, rids[second.message_id])}


def test_a_cookie_whose_name_only_ends_in_the_token_name_does_not_pass(app, dead, redis_client):
    # dramatiq-dashboard finds its cookie with an unanchored regular expression: a cookie
    # called x__dd_csrf (which a sibling subdomain can set) would stand in for it.
    app.reset()
    _, rid = dead["first"]
    refused = app.post("/jobs/delete-message", {"__dd_csrf": "abc", "queue": "comer.XQ", "id": rid},
                       headers={"Cookie": "x__dd_csrf=abc"}, status=403)
    assert refused.json["error"] == "bad_csrf_token" and "reload" in refused.json["message"]
    assert redis_client.zcard("dramatiq:comer.XQ") == 2


def test_a_malformed_token_cookie_is_never_echoed_into_a_page(app, dead):
    app.reset()
    _, rid = dead["first"]
    payload = '"><img src=x onerror=alert(1)>'
    page = app.get(f"/jobs/queues/comer/failed/{rid}", headers={"Cookie": f"__dd_csrf={payload}"}, status=200)
    assert payload not in page.text and "onerror" not in page.text
    token = re.search(r'name="__dd_csrf" value="([^"]*)"', page.text).group(1)
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    # And a POST carrying such a cookie is refused, whatever the form says.
    refused = app.post("/jobs/delete-message", {"__dd_csrf": payload, "queue": "comer.XQ", "id": rid},
                       headers={"Cookie": f"__dd_csrf={payload}"}, status=403)
    assert refused.json["error"] == "bad_csrf_token"


@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Referer": "http://evil.example/form.html"},
    {"Origin": "https://localhost"},  # another scheme is another origin
])
def test_a_post_from_another_origin_is_refused_even_with_the_token(app, dead, redis_client, headers):
    _, rid = dead["first"]
    refused = app.post("/jobs/delete-message", {"__dd_csrf": dead["token"], "queue": "comer.XQ", "id": rid},
                       headers=headers, status=403)
    assert refused.json["error"] == "cross_origin_request", refused.json
    assert "evil.example" in refused.json["message"] or "origin" in refused.json["message"]
    assert redis_client.zcard("dramatiq:comer.XQ") == 2
    assert redis_client.llen("foodapp:audit") == 0


def test_the_same_origin_with_the_token_works_and_is_audited(app, dead, redis_client):
    job_id, rid = dead["first"]
    app.post("/jobs/delete-message", {"__dd_csrf": dead["token"], "queue": "comer.XQ", "id": rid},
             headers={"Origin": ORIGIN.removesuffix(":80"), "Referer": "http://localhost/jobs/"}, status=302)
    assert not redis_client.hexists("dramatiq:comer.XQ.msgs", rid)
    entry = json.loads(redis_client.lindex("foodapp:audit", 0))
    assert entry["action"] == "dashboard delete" and entry["job_id"] == job_id


def test_repeated_form_fields_are_refused_and_nothing_happens(app, dead, redis_client):
    (_, first), (_, second) = dead["first"], dead["second"]
    for path in ("/jobs/delete-message", "/jobs/requeue-message"):
        refused = app.post(path, [("__dd_csrf", dead["token"]), ("queue", "comer.XQ"), ("id", first), ("id", second)],
                           status=400)
        assert refused.json["error"] == "repeated_field"
        assert "id" in refused.json["message"] and "once" in refused.json["message"]
    assert redis_client.zcard("dramatiq:comer.XQ") == 2
    assert redis_client.llen("foodapp:audit") == 0


def test_the_audit_names_what_was_removed(app, dead, redis_client):
    (first_job, first), (second_job, _) = dead["first"], dead["second"]
    app.post("/jobs/delete-message", {"__dd_csrf": dead["token"], "queue": "comer.XQ", "id": first}, status=302)
    entries = [json.loads(e) for e in redis_client.lrange("foodapp:audit", 0, -1)]
    assert [(e["action"], e["job_id"]) for e in entries] == [("dashboard delete", first_job)]
    assert redis_client.zcard("dramatiq:comer.XQ") == 1
    # Deleting what is no longer there removes nothing, and the audit says so.
    app.post("/jobs/delete-message", {"__dd_csrf": dead["token"], "queue": "comer.XQ", "id": first}, status=302)
    latest = json.loads(redis_client.lindex("foodapp:audit", 0))
    assert latest["job_id"] is None and latest["removed"] is False
    assert second_job != first_job


def test_the_token_cookie_stays_on_this_site(app, dead):
    page = app.get(f"/jobs/queues/comer/failed/{dead['first'][1]}", status=200)
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith("__dd_csrf=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    over_tls = app.get(f"/jobs/queues/comer/failed/{dead['first'][1]}", extra_environ={"wsgi.url_scheme": "https"},
                       headers={"Host": "localhost:443"}, status=200)
    assert "; Secure" in over_tls.headers["Set-Cookie"]


def test_over_tls_a_post_from_the_plain_http_origin_is_refused(app, dead, redis_client):
    _, rid = dead["first"]
    tls = {"wsgi.url_scheme": "https"}
    form = {"__dd_csrf": dead["token"], "queue": "comer.XQ", "id": rid}
    for origin in ("http://localhost", "https://localhost.evil.example", "https://localhost:8443"):
        app.post("/jobs/delete-message", form, extra_environ=tls, headers={"Host": "localhost", "Origin": origin},
                 status=403)
    assert redis_client.zcard("dramatiq:comer.XQ") == 2
    app.post("/jobs/delete-message", form, extra_environ=tls,
             headers={"Host": "localhost", "Origin": "https://localhost"}, status=302)
    assert redis_client.zcard("dramatiq:comer.XQ") == 1


@pytest.mark.parametrize("path", ["/jobs/queues/%0A/delete-all", "/jobs/x%0Ay", "/jobs/queues/comer/%0Afailed"])
def test_a_path_no_dashboard_route_matches_is_a_404_not_a_500(app, path):
    # dramatiq-dashboard's catch-all route (".*") does not match a newline, and then its
    # app returns None instead of an answer: waitress would turn that into a 500. Found by
    # tests/security/test_fuzz_routes.py.
    answer = app.get(path, status=404)
    assert answer.json["error"] == "not_found" and "dashboard" in answer.json["message"]
