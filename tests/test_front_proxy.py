"""The front proxy (deploy/haproxy/haproxy.cfg) gives every request a retry key of its own,
so that its retry of a request a dying web process took never makes a second job."""
import pytest

from tests.proxy import FrontProxy
from tests.servers import Web, http

pytestmark = pytest.mark.e2e


def test_a_retried_request_finds_its_first_job_and_clients_cannot_choose_the_key(app, redis_client):
    # The web app's side: the same retry key twice (the proxy's second try) makes one job.
    first = app.get("/comer/pan", headers={"X-Foodapp-Retry-Key": "k1"}, status=202)
    again = app.get("/comer/pan", headers={"X-Foodapp-Retry-Key": "k1"}, status=202)
    assert again.json["job_id"] == first.json["job_id"] and again.headers["Idempotent-Replayed"] == "true"
    assert redis_client.llen("dramatiq:comer") == 1
    # Kept only as long as a proxy retries (orders.proxy_retry_ttl), not a client's 24 h.
    assert 0 < redis_client.ttl("foodapp:idempotency:proxy:k1") <= 300
    # A client's own Idempotency-Key is the one that counts.
    keyed = app.get("/comer/pan", headers={"X-Foodapp-Retry-Key": "k1", "Idempotency-Key": "mine"}, status=202)
    assert keyed.json["job_id"] != first.json["job_id"]


def test_the_proxy_sets_a_new_retry_key_on_every_request_whatever_the_client_sent(tmp_path, redis_server, redis_client):
    web = Web(tmp_path, redis_server.url)
    proxy = FrontProxy(tmp_path, {"web": f"127.0.0.1:{web.port}"})
    try:
        web.start()
        proxy.start()
        answers = [http("GET", f"{proxy.url}/comer/pan", headers={"X-Foodapp-Retry-Key": "chosen"}) for _ in range(2)]
        assert [status for status, _, _ in answers] == [202, 202], answers
        assert answers[0][2]["job_id"] != answers[1][2]["job_id"], "a client chose the proxy's retry key"
        keys = set(redis_client.scan_iter("foodapp:idempotency:proxy:*"))
        assert len(keys) == 2 and "foodapp:idempotency:proxy:chosen" not in keys, keys
    finally:
        proxy.stop()
        web.stop()
