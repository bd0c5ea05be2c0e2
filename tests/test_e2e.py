"""End to end, as a user runs it: real waitress, the real `dramatiq` command, real Redis."""
import json

import pytest

from tests.servers import Web, Worker, http, wait_until
from tests.test_orders import SEED

pytestmark = pytest.mark.e2e


def test_the_seeds_eighteen_curls_are_all_done_fifo_per_queue(tmp_path, redis_server):
    web = Web(tmp_path, redis_server.url)
    # One worker thread: each queue must run in the order the orders came in.
    worker = Worker(tmp_path, redis_server.url, threads=1)
    try:
        web.start()
        worker.start()
        sent = {"comer": [], "beber": []}
        for queue, item in SEED:
            status, headers, body = http("GET", f"{web.url}/{queue}/{item}")
            assert status == 202, body
            assert headers["Location"] == body["status_url"]
            assert body["status_url"].startswith(web.url)
            sent[queue].append(body["job_id"])

        def all_done():
            states = [http("GET", f"{web.url}/api/jobs/{job_id}")[2]["state"]
                      for ids in sent.values() for job_id in ids]
            return all(state == "done" for state in states)
        wait_until(all_done, 60, "the 18 jobs to be done", interval=0.2)

        ledger = {job_id: json.loads(entry) for job_id, entry in
                  redis_server.client(decode_responses=True).hgetall("foodapp:ledger").items()}
        assert len(ledger) == 18
        for queue, ids in sent.items():
            by_time = sorted(ids, key=lambda job_id: float(ledger[job_id]["at"]))
            assert by_time == ids, f"{queue} did not run FIFO"
            assert {ledger[job_id]["queue"] for job_id in ids} == {queue}
        job = http("GET", f"{web.url}/api/jobs/{sent['beber'][1]}")[2]
        assert job["result"]["item"] == "martini" and job["worker_pid"] != web.pid
    finally:
        worker.stop()
        web.stop()
    assert "Traceback" not in worker.output(), worker.output()
