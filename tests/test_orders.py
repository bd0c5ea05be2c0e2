"""Orders over HTTP: the seed's URLs answer 202 with a status URL; bad input gets a 4xx JSON."""
import json

import pytest

SEED = [
    ("comer", "pimiento"), ("comer", "pepino"), ("comer", "tomate"), ("comer", "salmon"),
    ("comer", "zanahoria"), ("beber", "rioja"), ("beber", "martini"), ("beber", "ronmiel"),
    ("beber", "whisky"),
] * 2


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_order_is_accepted_and_stored(app, redis_client, method):
    response = app.request("/comer/platano", method=method, status=202)

    body = response.json
    assert body["queue"] == "comer"
    assert body["status_url"].endswith(f"/api/jobs/{body['job_id']}")
    assert response.headers["Location"] == body["status_url"]
    assert redis_client.llen("dramatiq:comer") == 1
    stored = json.loads(next(iter(redis_client.hgetall("dramatiq:comer.msgs").values())))
    assert (stored["message_id"], stored["actor_name"], stored["args"]) == (body["job_id"], "comer", ["platano"])


def test_the_seeds_eighteen_orders_go_to_their_queues_in_order(app, redis_client):
    job_ids = {"comer": [], "beber": []}
    for queue, item in SEED:
        job_ids[queue].append(app.get(f"/{queue}/{item}", status=202).json["job_id"])

    for queue, ids in job_ids.items():
        queued = redis_client.lrange(f"dramatiq:{queue}", 0, -1)
        messages = redis_client.hgetall(f"dramatiq:{queue}.msgs")
        assert [json.loads(messages[rid])["message_id"] for rid in queued] == ids


@pytest.mark.parametrize("path, item", [
    ("/comer/jam%C3%B3n", "jamón"),
    ("/comer/%F0%9F%8D%8E", "🍎"),
    ("/beber/caf%C3%A9%20con%20leche", "café con leche"),
    ("/comer/%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", '"><img src=x onerror=alert(1)>'),
])
def test_unicode_and_markup_names_are_kept_exactly(app, path, item):
    body = app.get(path, status=202).json
    assert body["item"] == item
    assert app.get(body["status_url"]).json["args"] == [item]


@pytest.mark.parametrize("path, rule", [
    ("/comer/", "empty"),
    ("/comer", "empty"),
    ("/beber/%20%20", "empty"),
    ("/comer/" + "a" * 65, "65 characters long; the limit is 64"),
    ("/comer/pan%0Aqueso", "control character U+000A"),
    ("/comer/pan%00", "control character U+0000"),
    ("/comer/pan%7F", "control character U+007F"),
    ("/comer/%ZZ", "not valid percent-encoding"),
    ("/comer/100%", "not valid percent-encoding"),
    ("/comer/%FF%FE", "not valid percent-encoded UTF-8"),
    ("/comer/pan/queso", "must not contain '/'"),
])
def test_bad_item_names_get_a_400_naming_the_rule(app, redis_client, path, rule):
    response = app.get(path, status=400, expect_errors=True)
    assert response.content_type == "application/json"
    assert response.json["error"] == "bad_item"
    assert rule in response.json["message"]
    assert redis_client.dbsize() == 0


def test_the_longest_allowed_name_is_accepted(app):
    app.get("/comer/" + "%C3%B1" * 64, status=202)


def test_unknown_routes_get_a_404_json(app):
    response = app.get("/cenar/platano", status=404)
    assert response.json["error"] == "not_found"
    assert "/comer/<food>" in response.json["message"]


def test_a_wrong_method_gets_a_405_json(app):
    response = app.delete("/comer/platano", status=405)
    assert response.headers["Allow"] == "GET, POST"
    assert response.json["error"] == "method_not_allowed"
    assert app.get("/reports", status=405).json["message"].endswith("use POST")


def test_a_report_is_queued_on_the_batch_queue(app, redis_client):
    body = app.post("/reports", status=202).json
    assert body["queue"] == "batch"
    assert redis_client.llen("dramatiq:batch") == 1
