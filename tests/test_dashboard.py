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
