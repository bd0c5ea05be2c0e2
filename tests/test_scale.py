"""With 100,000 jobs in Redis: the operations page still answers with O(1) work per queue and
worker (no KEYS); dramatiq-dashboard's front page uses KEYS per worker. Times are printed, not
asserted (bench/ is where speed is measured)."""
import time

import pytest

from tests.servers import Web, http

pytestmark = pytest.mark.drill

SEED = """
for i = 1, tonumber(ARGV[1]) do
    local id = "seed-" .. i
    local job = string.format("%08x-0000-4000-8000-%012x", i, i)
    redis.call("hset", "dramatiq:comer.msgs", id, cjson.encode({queue_name = "comer", actor_name = "comer",
        args = {"plato" .. i}, kwargs = {}, options = {redis_message_id = id}, message_id = job,
        message_timestamp = 1700000000000 + i}))
    redis.call("rpush", "dramatiq:comer", id)
    redis.call("hset", "foodapp:job:" .. job, "state", "queued", "job_id", job, "queue", "comer", "actor", "comer",
        "args", "[\\"plato" .. i .. "\\"]", "enqueued_at", "1700000000.000")
    redis.call("rpush", "foodapp:job:" .. job .. ":events", "{\\"event\\":\\"queued\\",\\"at\\":\\"1700000000.000\\"}")
end
for w = 1, 5 do
    redis.call("zadd", "dramatiq:__heartbeats__", ARGV[2], "worker-" .. w)
    redis.call("hset", "foodapp:worker:worker-" .. w, "name", "host:" .. w, "queues", "comer beber")
end
"""


def keys_calls(client):
    return client.info("commandstats").get("cmdstat_keys", {}).get("calls", 0)


def timed_get(url):
    started = time.monotonic()
    status, _, _ = http("GET", url, timeout=120)
    return status, time.monotonic() - started


def test_the_ops_page_at_100000_jobs_uses_no_keys(tmp_path, redis_server):
    client = redis_server.client()
    client.eval(SEED, 0, 100_000, int(time.time() * 1000))
    assert client.llen("dramatiq:comer") == 100_000
    web = Web(tmp_path, redis_server.url)
    try:
        web.start()
        before = keys_calls(client)
        status, ops_seconds = timed_get(f"{web.url}/ops")
        assert status == 200
        assert keys_calls(client) == before, "the operations page ran KEYS"
        status, metrics_seconds = timed_get(f"{web.url}/metrics")
        assert status == 200 and keys_calls(client) == before, "/metrics ran KEYS"

        status, dashboard_seconds = timed_get(f"{web.url}/jobs/")
        assert status == 200
        dashboard_keys = keys_calls(client) - before
        status, queue_seconds = timed_get(f"{web.url}/jobs/queues/comer")
        print(f"\nwith 100,000 jobs and 5 workers: /ops {ops_seconds * 1000:.0f} ms and /metrics "
              f"{metrics_seconds * 1000:.0f} ms (no KEYS); dramatiq-dashboard's front page "
              f"{dashboard_seconds * 1000:.0f} ms with {dashboard_keys} KEYS calls (its own Lua ran one per "
              f"worker, a full scan of the keyspace each; foodapp lists the workers from their heartbeats), "
              f"its comer page {queue_seconds * 1000:.0f} ms (HSCAN, 300 at a time)")
        assert dashboard_keys == 0, "dramatiq-dashboard's front page ran KEYS"

        # The console's pages and JSON at 100,000 queued jobs: the slowest of 5 requests each,
        # printed (the mark is 100 ms a request); none runs KEYS.
        before = keys_calls(client)
        for path in ("/ops", "/ops/api/overview", "/ops/api/series?minutes=60", "/ops/api/queues",
                     "/ops/jobs", "/ops/api/jobs?queue=comer", "/ops/workers", "/ops/api/workers",
                     "/ops/api/periodic", "/metrics"):
            answers = [timed_get(f"{web.url}{path}") for _ in range(5)]
            assert all(status == 200 for status, _ in answers), (path, answers)
            print(f"console at 100,000 jobs: {path} slowest of 5 {max(t for _, t in answers) * 1000:.0f} ms")
        assert keys_calls(client) == before, "a console page ran KEYS"
    finally:
        web.stop()
