"""The console's charts have data though nobody has /ops open: a real worker's heartbeat
thread records the queue depth, latency and worker count of each 10-second slot."""
import json

import pytest
import redis

from foodapp import series
from tests.servers import Worker, wait_until

pytestmark = pytest.mark.e2e


def test_a_real_worker_records_series_samples_with_nobody_watching(tmp_path, app, redis_client, redis_server):
    # Two orders wait in a queue this worker does not take: the samples count them.
    for item in ("pan", "queso"):
        app.get(f"/beber/{item}", status=202)
    worker = Worker(tmp_path, redis_server.url, queues=("comer",)).start()
    try:
        def samples():
            found = []
            for key in redis_client.scan_iter(f"{series.SERIES_PREFIX}*"):  # a test Redis of a few keys
                found += [json.loads(value) for field, value in redis_client.hgetall(key).items()
                          if not field.endswith(":claim")]
            return [sample for sample in found if sample["w"] >= 1] or None
        recorded = wait_until(samples, 30, "a series sample written by the worker's heartbeat")
        assert recorded[0]["q"].get("beber", [None])[0] == 2, recorded
        # And the charts' reader finds it: a slot with the worker and beber's depth.
        charts = series.read(redis.Redis.from_url(redis_server.url), minutes=2)["samples"]  # as the app's: bytes
        assert 2 in charts["depth"]["beber"] and any(charts["workers"]), charts
    finally:
        worker.stop()
