"""POST /reports lists what every client ordered: behind the login in production, and capped."""
from tests.conftest import drain
from tests.security.test_login import PASSWORD, USER, login_app


def test_reports_need_the_login_when_the_dashboard_does(redis_server, monkeypatch):
    app = login_app(redis_server, monkeypatch)
    refused = app.post("/reports", status=401)
    assert refused.json["error"] == "login_required" and refused.headers["WWW-Authenticate"].startswith("Basic")
    app.get("/comer/pan", status=202)  # orders stay open
    app.authorization = ("Basic", (USER, PASSWORD))
    assert app.post("/reports", status=202).json["queue"] == "batch"


def test_a_report_lists_at_most_reports_max_items_per_queue(redis_server, monkeypatch):
    from dramatiq import get_broker

    from tests.conftest import make_app, start_worker

    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    app = make_app(**{"reports.max_items": "3"})
    broker = get_broker()
    worker = start_worker(broker)
    try:
        for item, times in (("pan", 4), ("queso", 3), ("uva", 2), ("pera", 1), ("higo", 1)):
            for _ in range(times):
                app.get(f"/comer/{item}", status=202)
        app.get("/beber/agua", status=202)
        drain(broker, worker)
        job = app.post("/reports", status=202).json
        drain(broker, worker)
    finally:
        worker.stop()
    result = app.get(job["status_url"]).json["result"]
    assert result["comer"] == {"pan": 4, "queso": 3, "uva": 2}, result
    assert result["eaten"] == 11 and result["drunk"] == 1 and result["beber"] == {"agua": 1}
    assert result["omitted"] == {"comer": 2, "beber": 0}
    assert any("2 more" in note and "reports.max_items" in note for note in result["notes"]), result
