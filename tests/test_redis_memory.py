"""Redis memory: maxmemory with noeviction makes Redis refuse writes, and foodapp answers
503 redis_unavailable storing nothing; the headroom is on /ops and in /metrics.

Real redis-server on free ports, real waitress (pserve testing.ini)."""
import re

import pytest
import redis

from foodapp.durable import is_retryable

from tests.servers import RedisServer, Web, http

LIMIT = 4 * 1024 * 1024


@pytest.fixture
def small_redis(tmp_path):
    server = RedisServer(tmp_path, extra=("--maxmemory", str(LIMIT), "--maxmemory-policy", "noeviction"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def web(tmp_path, small_redis):
    # Retry the refused write for one second only before answering.
    process = Web(tmp_path, small_redis.url, env={"FOODAPP_ENQUEUE_RETRY_SECONDS": "1"}).start()
    try:
        yield process
    finally:
        process.stop()


def gauge(text, name):
    return float(re.search(rf"(?m)^{name} (\S+)$", text).group(1))


def fill(client):
    """Put used_memory past maxmemory: write 6 MiB with no limit, then set the limit back
    (with noeviction Redis keeps everything and refuses writes from then on)."""
    client.config_set("maxmemory", 0)
    for i in range(6):
        client.set(f"filler:{i}", b"x" * (1024 * 1024))
    client.config_set("maxmemory", LIMIT)
    memory = client.info("memory")
    assert int(memory["used_memory"]) > int(memory["maxmemory"]) == LIMIT, memory


def test_a_full_redis_refuses_the_order_with_503_and_stores_nothing(web, small_redis):
    client = small_redis.client()
    status, _, body = http("GET", web.url + "/comer/tomate")
    assert status == 202, body

    fill(client)
    before = {key: client.type(key) for key in client.scan_iter(count=1000)}
    lengths = {key: client.llen(key) for key, kind in before.items() if kind == b"list"}

    status, headers, body = http("GET", web.url + "/comer/pan", headers={"Idempotency-Key": "full-1"})
    assert status == 503, body
    assert body["error"] == "redis_unavailable" and "Retry-After" in headers, body
    assert "Redis is out of memory" in body["message"] and "maxmemory" in body["message"], body
    assert "Nothing was queued" in body["message"], body
    status, _, body = http("POST", web.url + "/menu", headers={"Content-Type": "application/json"},
                           body=b'[{"comer": "queso"}, {"beber": "vino"}]')
    assert status == 503 and body["error"] == "redis_unavailable", body

    # Nothing half-stored: no new key (no job status, no idempotency key), no longer queue.
    after = {key: client.type(key) for key in client.scan_iter(count=1000)}
    assert set(after) == set(before), sorted(set(after) ^ set(before))
    assert {key: client.llen(key) for key in lengths} == lengths

    # Memory freed: the same order is taken.
    client.delete(*[key for key in after if key.startswith(b"filler:")])
    status, _, body = http("GET", web.url + "/comer/pan", headers={"Idempotency-Key": "full-1"})
    assert status == 202, body


def test_memory_headroom_on_ops_and_in_metrics(web, small_redis):
    client = small_redis.client()
    client.set("filler:0", b"x" * (1024 * 1024))
    status, _, page = http("GET", web.url + "/ops")
    assert status == 200
    memory = re.search(r'<table id="memory">(.*?)</table>', page, re.S).group(1)
    assert "of 4.0 MiB (maxmemory)" in memory and "headroom" in memory and "noeviction" in memory, memory

    status, _, text = http("GET", web.url + "/metrics")
    assert status == 200
    assert re.search(r"(?m)^# HELP foodapp_redis_memory_used_bytes .*Cluster-wide\.$", text)
    assert re.search(r"(?m)^# HELP foodapp_redis_memory_max_bytes .*Cluster-wide\.$", text)
    assert gauge(text, "foodapp_redis_memory_max_bytes") == LIMIT
    assert 1024 * 1024 < gauge(text, "foodapp_redis_memory_used_bytes") < LIMIT

    # Without maxmemory: no limit, said so.
    client.config_set("maxmemory", 0)
    page = http("GET", web.url + "/ops")[2]
    assert "no maxmemory set" in page
    assert gauge(http("GET", web.url + "/metrics")[2], "foodapp_redis_memory_max_bytes") == 0


def test_an_oom_reply_is_retried_by_held_writes(small_redis):
    """What a worker's held write (its ack, a retry's store) does with Redis full: it holds on."""
    client = small_redis.client()
    fill(client)
    with pytest.raises(redis.RedisError) as refused:
        client.set("one-more", "x")
    assert is_retryable(refused.value), repr(refused.value)
