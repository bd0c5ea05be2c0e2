"""An idle worker waits for work without tripping its own Redis socket timeout.

The consumer blocks on a wake-up list (BLPOP) between jobs, with the fetch (and, with
replicas, a WAIT) pipelined behind it. Found in the host drills' logs: with
redis.socket_timeout at or below that block, every idle wait ended in "Timeout reading
from socket" and a consumer restart, a second with no consumer each time.
"""
import pytest

from tests.servers import Worker, wait_until

pytestmark = pytest.mark.e2e


def test_an_idle_worker_blocks_within_its_socket_timeout(tmp_path, redis_server, app):
    worker = Worker(tmp_path, redis_server.url, queues=("comer",),
                    env={"FOODAPP_REDIS_SOCKET_TIMEOUT": "0.5"})
    client = redis_server.client()
    try:
        worker.start()
        # Idle waits, several of them: each is one BLPOP.
        wait_until(lambda: client.info("commandstats").get("cmdstat_blpop", {}).get("calls", 0) >= 6, 30,
                   "the idle worker to wait for work several times")
        job = app.get("/comer/pan", status=202).json
        wait_until(lambda: app.get(job["status_url"]).json["state"] == "done", 30, "the job to run")
        log = worker.output()
        assert "Consumer encountered" not in log, log[-3000:]
        assert "Timeout reading from socket" not in log, log[-3000:]
    finally:
        worker.stop()
