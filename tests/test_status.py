"""The status API: a job goes queued -> running -> done, with its worker, result and timeline."""
import uuid

import dramatiq

from tests.conftest import drain, make_app, start_worker
from tests.servers import wait_until


def test_a_job_goes_from_queued_to_done_with_its_result(app, broker, redis_client):
    accepted = app.get("/comer/platano", status=202).json
    queued = app.get(accepted["status_url"]).json
    assert queued["state"] == "queued"
    assert queued["queue"] == "comer" and queued["args"] == ["platano"]
    assert queued["enqueued_at"].endswith("Z")

    worker = start_worker(broker)
    try:
        drain(broker, worker)
    finally:
        worker.stop()

    done = app.get(accepted["status_url"]).json
    assert done["state"] == "done"
    assert done["enqueued_at"] <= done["started_at"] <= done["finished_at"]
    assert done["worker"] == broker.broker_id and done["worker_pid"] > 0
    assert done["result"]["item"] == "platano" and done["result"]["job_id"] == accepted["job_id"]
    assert [event["event"] for event in done["events"]] == ["queued", "started", "done"]


def test_running_is_visible_while_the_job_runs(redis_server, monkeypatch):
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    app = make_app(**{"kitchen.preparation_seconds": "3"})
    broker = dramatiq.get_broker()
    accepted = app.get("/beber/rioja", status=202).json
    worker = start_worker(broker)
    try:
        running = wait_until(
            lambda: (job := app.get(accepted["status_url"]).json)["state"] == "running" and job,
            10, "the job to be running",
        )
        assert running["worker_name"] == broker.worker_name
        assert "finished_at" not in running
        drain(broker, worker)
    finally:
        worker.stop()
    assert app.get(accepted["status_url"]).json["state"] == "done"


def test_a_report_summarises_the_ledger(app, broker, worker):
    for path in ["/comer/pimiento", "/comer/pimiento", "/beber/martini", "/beber/martini", "/beber/martini"]:
        app.get(path, status=202)
    drain(broker, worker)
    report = app.post("/reports", status=202).json
    drain(broker, worker)

    result = app.get(report["status_url"]).json["result"]
    assert result["eaten"] == 2 and result["drunk"] == 3
    assert result["comer"] == {"pimiento": 2} and result["beber"] == {"martini": 3}
    assert result["warnings"] and "Too many martinis: 3" in result["warnings"][0]


def test_status_is_kept_for_the_configured_ttl_then_404(redis_server, monkeypatch):
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    client = redis_server.client()
    default_app = make_app()
    job_id = default_app.get("/comer/platano", status=202).json["job_id"]
    assert 86000 < client.ttl(f"foodapp:job:{job_id}") <= 86400

    app = make_app(**{"jobs.status_ttl": "1"})
    accepted = app.get("/comer/platano", status=202).json
    assert app.get(accepted["status_url"]).json["state"] == "queued"
    response = wait_until(
        lambda: (r := app.get(accepted["status_url"], expect_errors=True)).status_int == 404 and r,
        10, "the status to expire",
    )
    assert response.json["error"] == "job_not_found"
    assert "expired" in response.json["message"]


def test_unknown_and_malformed_job_ids(app):
    assert app.get(f"/api/jobs/{uuid.uuid4()}", status=404).json["error"] == "job_not_found"
    assert app.get("/api/jobs/not-a-job", status=400).json["error"] == "bad_job_id"


def test_done_is_written_by_the_ack_in_the_same_step_and_only_once(app, broker, redis_client):
    """finish.lua: the message leaves the worker's ack set and its job becomes done together;
    a second finish (a retried ack whose answer was lost) changes nothing and counts nothing."""
    from foodapp import jobs

    accepted = app.get("/comer/pan", status=202).json
    job_id = accepted["job_id"]
    acks = f"dramatiq:__acks__.{broker.broker_id}.comer"
    [rid] = redis_client.lrange("dramatiq:comer", 0, -1)
    # What a worker's fetch and JobStatus's "running" leave behind:
    redis_client.lrem("dramatiq:comer", 1, rid)
    redis_client.sadd(acks, rid)
    broker.jobs.transition(job_id, "running", event="started", worker=broker.broker_id, started_at=jobs.now())

    change = broker.jobs.change(job_id, "done", event="done", only_from="running", only_worker=broker.broker_id,
                                counts=jobs.outcome("comer", "done"), finished_at=jobs.now(), result="null")
    assert broker.jobs.finish(acks, "dramatiq:comer.msgs", rid, change) == 1
    assert redis_client.smembers(acks) == set() and not redis_client.hexists("dramatiq:comer.msgs", rid)
    assert app.get(accepted["status_url"]).json["state"] == "done"
    assert redis_client.hget(jobs.STATS, "comer:done") == "1"

    assert broker.jobs.finish(acks, "dramatiq:comer.msgs", rid, change) == 0
    assert redis_client.hget(jobs.STATS, "comer:done") == "1"
    assert [e["event"] for e in app.get(accepted["status_url"]).json["events"]] == ["queued", "started", "done"]
