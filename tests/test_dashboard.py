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
