"""Bounded resources: the ledger keeps about ledger.retention_seconds of orders, its totals
follow it, and no foodapp key in Redis lives for ever or grows without bound.

Real redis-server on a free port, the app built from testing.ini, an in-process Dramatiq
worker (as the `dramatiq` command boots one)."""
import pytest

from actors import ledger
from tests.conftest import drain, make_app, start_worker

RETENTION = 600


@pytest.fixture
def short_app(redis_server, monkeypatch):
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    return make_app(**{"ledger.retention_seconds": str(RETENTION)})


def order(app, broker, worker, path):
    job_id = app.get(path, status=202).json["job_id"]
    drain(broker, worker)
    return job_id


def test_the_ledger_trims_entries_older_than_the_retention_and_the_totals_follow(short_app, redis_client):
    import dramatiq

    broker = dramatiq.get_broker()
    worker = start_worker(broker)
    try:
        old = [order(short_app, broker, worker, "/comer/tomate") for _ in range(2)]
        kept = order(short_app, broker, worker, "/beber/agua")
        assert set(redis_client.hkeys(ledger.LEDGER)) == {*old, kept}
        assert redis_client.hgetall(ledger.TOTALS) == {"comer:tomate": "2", "beber:agua": "1"}
        for key in (ledger.LEDGER, ledger.TOTALS, ledger.INDEX):
            assert 0 < redis_client.ttl(key) <= RETENTION, key

        # The two tomates were recorded longer ago than the retention (their index scores are
        # the Redis time they were recorded at: made older here, instead of waiting).
        now = float(redis_client.time()[0])
        redis_client.zadd(ledger.INDEX, {job_id: now - RETENTION - 60 for job_id in old})

        new = order(short_app, broker, worker, "/comer/pan")
        assert set(redis_client.hkeys(ledger.LEDGER)) == {kept, new}
        assert redis_client.hgetall(ledger.TOTALS) == {"beber:agua": "1", "comer:pan": "1"}
        assert set(redis_client.zrange(ledger.INDEX, 0, -1)) == {kept, new}
        # A job recorded within the retention and run again records nothing (test_jobs has
        # the re-run itself); the report counts what the ledger holds.
        report = short_app.post("/reports", status=202).json
        drain(broker, worker)
        result = short_app.get(report["status_url"]).json["result"]
        assert (result["eaten"], result["drunk"], result["comer"]) == (1, 1, {"pan": 1})
    finally:
        worker.stop()


def test_one_record_trims_a_bounded_number_of_old_entries(short_app, redis_client):
    import dramatiq

    broker = dramatiq.get_broker()
    worker = start_worker(broker)
    try:
        first = order(short_app, broker, worker, "/comer/uva")
        # A backlog of old entries (as after a retention lowered in the ini): each record
        # trims at most TRIM_BATCH of them, oldest first, so no script runs long.
        now = float(redis_client.time()[0])
        backlog = ledger.TRIM_BATCH + 30
        with redis_client.pipeline() as pipe:
            for i in range(backlog):
                pipe.hset(ledger.LEDGER, f"old-{i}", f'{{"queue": "comer", "item": "viejo", "job_id": "old-{i}"}}')
                pipe.zadd(ledger.INDEX, {f"old-{i}": now - RETENTION - 1000 + i})
            pipe.hincrby(ledger.TOTALS, "comer:viejo", backlog)
            pipe.execute()

        order(short_app, broker, worker, "/comer/uva")
        assert redis_client.hget(ledger.TOTALS, "comer:viejo") == "30"
        assert redis_client.hlen(ledger.LEDGER) == 30 + 2
        order(short_app, broker, worker, "/comer/uva")
        assert redis_client.hget(ledger.TOTALS, "comer:viejo") is None
        assert redis_client.hlen(ledger.LEDGER) == 3 and first in redis_client.hkeys(ledger.LEDGER)
        assert redis_client.hgetall(ledger.TOTALS) == {"comer:uva": "3"}
    finally:
        worker.stop()


# Keys without an expiry whose size is fixed by the code, not by the orders: why each is bounded.
BOUNDED = {
    "foodapp:stats": "one counter per queue and outcome",
    "foodapp:sweep": "one timestamp",
    "foodapp:failovers": "one entry per Sentinel failover epoch",
    "foodapp:audit": "a list trimmed to 10,000 entries",
}


def test_no_foodapp_key_lives_for_ever(app, broker, worker, redis_client):
    """Every key foodapp wrote for orders, menus, a report and the operations pages has an
    expiry, or a size that does not grow with the orders (BOUNDED, durations per queue)."""
    for path in ("/comer/tomate", "/beber/agua", "/comer/pan"):
        app.get(path, status=202)
    app.post_json("/menu", [{"comer": "queso"}, {"beber": "vino"}], headers={"Idempotency-Key": "m-1"}, status=202)
    app.get("/comer/uva", headers={"Idempotency-Key": "o-1"}, status=202)
    app.post("/reports", status=202)
    drain(broker, worker)
    app.get("/ops", status=200)
    app.get("/metrics", status=200)

    forever = []
    for key in redis_client.scan_iter("foodapp:*", count=1000):
        if redis_client.ttl(key) >= 0 or key in BOUNDED or key.startswith("foodapp:durations:"):
            continue
        forever.append((key, redis_client.type(key)))
    assert not forever, f"foodapp keys with no expiry that grow with the orders: {forever}"
    assert redis_client.ttl(ledger.LEDGER) > 0 and redis_client.ttl(ledger.TOTALS) > 0
