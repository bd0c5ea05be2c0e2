"""dramatiq-dashboard at /jobs, mounted from the ini, lists every queue from the start."""
import re

from tests.conftest import make_app


def queue_rows(html):
    return re.findall(r'href="/jobs/queues/(\w+)"', html)


def test_the_dashboard_lists_the_three_queues_before_any_job(app):
    page = app.get("/jobs/", status=200)
    assert page.content_type == "text/html"
    assert {"comer", "beber", "batch"} <= set(queue_rows(page.text))
    assert app.get("/jobs", status=200).text == page.text


def test_the_dashboard_shows_queued_jobs(app):
    for _ in range(3):
        app.get("/comer/pimiento", status=202)
    page = app.get("/jobs/queues/comer", status=200)
    # One row per job.
    assert page.text.count("pimiento") == 3


def test_the_dashboard_can_be_turned_off_and_moved(redis_server, monkeypatch):
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    off = make_app(**{"dashboard.enabled": "false"})
    assert off.get("/jobs/", status=404).json["error"] == "not_found"

    moved = make_app(**{"dashboard.prefix": "/panel"})
    assert "comer" in queue_rows(moved.get("/panel/").text.replace("/panel/", "/jobs/"))
    assert moved.get("/jobs/", status=404).json["error"] == "not_found"


def _dashboard_token(app, page):
    return re.search(r'name="__dd_csrf" value="(\w+)"', app.get(page, status=200).text).group(1)


def test_a_job_deleted_from_the_dashboard_says_cancelled_not_queued(app, redis_client):
    """Nothing hidden: the dashboard's Delete on a waiting or a delayed job removes its
    message, and the job's status must then say it will not run (it used to say "queued" or
    "scheduled" until its status expired). A dead letter deleted keeps its dead state."""
    waiting = app.get("/comer/uva", status=202).json["job_id"]
    later = app.get("/comer/kiwi?delay=600000", status=202).json["job_id"]
    [rid] = redis_client.lrange("dramatiq:comer", 0, -1)
    token = _dashboard_token(app, "/jobs/queues/comer")
    app.post("/jobs/delete-message", {"__dd_csrf": token, "queue": "comer", "id": rid}, status=302)
    assert redis_client.llen("dramatiq:comer") == 0

    delayed = redis_client.hget(f"foodapp:job:{later}", "delayed")
    token = _dashboard_token(app, "/jobs/queues/comer/delayed")
    app.post("/jobs/delete-message", {"__dd_csrf": token, "queue": "comer.DQ", "id": delayed}, status=302)
    assert not redis_client.hexists("dramatiq:comer.DQ.msgs", delayed)

    for job_id in (waiting, later):
        job = app.get(f"/api/jobs/{job_id}", status=200).json
        assert job["state"] == "cancelled", job
        assert job["events"][-1]["event"] == "cancelled" and job["events"][-1]["by"] == "anonymous", job["events"]
        assert "dashboard" in job["events"][-1].get("via", ""), job["events"]


def test_a_dashboard_requeue_that_redis_refuses_keeps_the_dead_letter(app, broker, redis_client):
    """Nothing lost: dramatiq-dashboard's Requeue deleted the dead letter first and enqueued
    its copy after, so a Redis that refused the enqueue (a failover, here a master without
    its replica: NOREPLICAS) lost the job. The copy is stored first now; a refusal answers
    503 and leaves the dead letter where it was, and Requeue works once Redis takes writes."""
    import dramatiq

    from tests.conftest import drain, start_worker

    def poison(item):
        raise ValueError("never")

    dramatiq.Actor(poison, broker=broker, actor_name="poison", queue_name="comer", priority=0,
                   options={"max_retries": 0})
    job_id = broker.get_actor("poison").send("plomo").message_id
    worker = start_worker(broker)
    try:
        drain(broker, worker)
    finally:
        worker.stop()
    broker.holds_on = False  # a web process's broker: its enqueue gives up (503), a worker's holds on
    [rid] = redis_client.zrange("dramatiq:comer.XQ", 0, -1)
    token = _dashboard_token(app, "/jobs/queues/comer/failed")
    form = {"__dd_csrf": token, "queue": "comer.XQ", "id": rid}

    enqueue = broker.enqueue

    def refused(message, **options):  # Redis stops taking writes just as the copy is sent
        redis_client.config_set("min-replicas-to-write", 1)
        return enqueue(message, **options)

    broker.enqueue = refused
    try:
        answer = app.post("/jobs/requeue-message", form, status=503)
    finally:
        broker.enqueue = enqueue
        redis_client.config_set("min-replicas-to-write", 0)
    assert "still in the dead letters" in answer.text, answer.text
    assert redis_client.zrange("dramatiq:comer.XQ", 0, -1) == [rid]
    assert redis_client.hexists("dramatiq:comer.XQ.msgs", rid)
    assert redis_client.llen("dramatiq:comer") == 0
    assert redis_client.hget(f"foodapp:job:{job_id}", "state") == "dead"

    app.post("/jobs/requeue-message", {**form, "__dd_csrf": _dashboard_token(app, "/jobs/queues/comer/failed")},
             status=302)
    assert redis_client.zcard("dramatiq:comer.XQ") == 0 and redis_client.hlen("dramatiq:comer.XQ.msgs") == 0
    assert redis_client.llen("dramatiq:comer") == 1
    assert redis_client.hget(f"foodapp:job:{job_id}", "state") == "queued"
