"""The API beyond one order: menus (batches), delayed jobs, idempotency keys."""
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import drain, start_worker
from tests.servers import Web, http, wait_until

MENU = [{"comer": "pan"}, {"beber": "agua"}, {"comer": "jamón"}, {"beber": "martini"}]


def test_a_menu_is_stored_in_one_step_and_its_batch_counts_what_is_done(app, broker, redis_client):
    response = app.post_json("/menu", MENU, status=202)
    body = response.json
    assert response.headers["Location"] == body["status_url"]
    assert [(j["queue"], j["item"]) for j in body["jobs"]] == [("comer", "pan"), ("beber", "agua"),
                                                              ("comer", "jamón"), ("beber", "martini")]
    # No worker yet: every job of the menu is in its queue, in the menu's order.
    for queue in ("comer", "beber"):
        messages = redis_client.hgetall(f"dramatiq:{queue}.msgs")
        queued = [json.loads(messages[rid])["message_id"] for rid in redis_client.lrange(f"dramatiq:{queue}", 0, -1)]
        assert queued == [j["job_id"] for j in body["jobs"] if j["queue"] == queue]
    worker = start_worker(broker)
    try:
        drain(broker, worker)
    finally:
        worker.stop()

    batch = app.get(body["status_url"]).json
    assert batch["total"] == 4 and batch["done"] == 4 and batch["finished"] is True
    assert batch["job_ids"] == [j["job_id"] for j in body["jobs"]]
    assert redis_client.hlen("foodapp:ledger") == 4


@pytest.mark.parametrize("menu, message", [
    ([], "non-empty JSON list"),
    ({"comer": "pan"}, "non-empty JSON list"),
    ([{"comer": "pan"}, {"cenar": "sopa"}], "item 1 must be"),
    ([{"comer": "pan"}, {"beber": ""}], "item 1: the item name is empty"),
    ([{"comer": "pan"}, {"beber": "a\nb"}], "item 1: the item name holds the control character"),
    ([{"comer": "pan", "beber": "vino"}], "item 0 must be"),
    ([{"comer": 7}], "the name must be a string"),
    ([{"comer": "pan"}] * 101, "the most one request may order is 100"),
])
def test_a_bad_menu_stores_nothing_and_says_why(app, redis_client, menu, message):
    response = app.post_json("/menu", menu, status=400)
    assert message in response.json["message"]
    assert redis_client.dbsize() == 0


def test_a_menu_must_be_json(app, redis_client):
    assert app.post("/menu", "pan", content_type="text/plain", status=415).json["error"] == "bad_content_type"
    assert app.post("/menu", "[{", content_type="application/json", status=400).json["error"] == "bad_json"
    assert redis_client.dbsize() == 0


def test_a_delayed_job_is_scheduled_and_runs_not_before_its_time(app, broker, worker):
    body = app.get("/comer/cena?delay=1.5", status=202).json
    assert body["delay_seconds"] == 1.5
    job = app.get(body["status_url"]).json
    assert job["state"] == "scheduled"
    eta = job["eta"]
    done = wait_until(lambda: (j := app.get(body["status_url"]).json)["state"] == "done" and j, 20, "the delayed job")
    assert done["started_at"] >= eta
    assert [e["event"] for e in done["events"]][:2] == ["scheduled", "due"]


def test_an_eta_in_the_past_runs_now_and_bad_delays_are_refused(app):
    past = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    assert app.get("/comer/ya", params={"eta": past}, status=202).json["delay_seconds"] == 0
    assert "between 0 and" in app.get("/comer/x?delay=-1", status=400).json["message"]
    assert "between 0 and" in app.get("/comer/x?delay=9999999", status=400).json["message"]
    assert "number of seconds" in app.get("/comer/x?delay=soon", status=400).json["message"]
    assert "time zone" in app.get("/comer/x", params={"eta": "2030-01-01T10:00:00"}, status=400).json["message"]
    assert "not both" in app.get("/comer/x?delay=1&eta=2030-01-01T10:00:00Z", status=400).json["message"]


def test_the_same_idempotency_key_returns_the_same_job(app, redis_client):
    first = app.get("/comer/pan", headers={"Idempotency-Key": "order-1"}, status=202)
    again = app.get("/comer/pan", headers={"Idempotency-Key": "order-1"}, status=202)
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    assert redis_client.llen("dramatiq:comer") == 1

    conflict = app.get("/comer/queso", headers={"Idempotency-Key": "order-1"}, status=422)
    assert conflict.json["error"] == "idempotency_key_reused"
    assert redis_client.llen("dramatiq:comer") == 1

    menu = app.post_json("/menu", MENU, headers={"Idempotency-Key": "menu-1"}, status=202).json
    assert app.post_json("/menu", MENU, headers={"Idempotency-Key": "menu-1"}, status=202).json == menu
    assert 0 < redis_client.ttl("foodapp:idempotency:order-1") <= 86400
    assert app.get("/comer/pan", headers={"Idempotency-Key": "x" * 300}, status=400).json["error"] == "bad_order"


def test_a_hundred_concurrent_identical_requests_make_one_job(tmp_path, redis_server):
    web = Web(tmp_path, redis_server.url)
    try:
        web.start()
        def send(_):
            return http("POST", f"{web.url}/beber/rioja", headers={"Idempotency-Key": "one-rioja"})
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(send, range(100)))
        assert {status for status, _, _ in answers} == {202}
        assert len({body["job_id"] for _, _, body in answers}) == 1
        assert redis_server.client().llen("dramatiq:beber") == 1
        assert sum(1 for _, headers, _ in answers if headers.get("Idempotent-Replayed")) == 99
    finally:
        web.stop()
