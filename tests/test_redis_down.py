"""Redis not answering: the app still starts, says 503 with Retry-After, and recovers alone."""
from tests.conftest import make_app
from tests.servers import RedisServer, free_port


def test_the_app_starts_and_answers_503_when_redis_is_down(monkeypatch):
    monkeypatch.setenv("FOODAPP_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    app = make_app()

    response = app.get("/comer/platano", status=503)
    assert response.headers["Retry-After"] == "1"
    assert response.json["error"] == "redis_unavailable"
    assert "Nothing was queued" in response.json["message"]

    ready = app.get("/readyz", status=503)
    assert ready.json["ready"] is False and "did not answer" in ready.json["reason"]
    assert app.get("/healthz", status=200).json["status"] == "alive"
    assert app.get("/api/jobs/7a2d2b8e-3bf0-4f0a-9d1e-4c2b5e8f1a00", status=503).json["error"] == "redis_unavailable"


def test_everything_works_again_when_redis_comes_back(tmp_path, monkeypatch):
    first = RedisServer(tmp_path)
    # The same port, a new server with nothing in it (testing Redis keeps nothing on disk).
    server = RedisServer(tmp_path, port=first.port)
    try:
        first.start()
        monkeypatch.setenv("FOODAPP_REDIS_URL", first.url)
        app = make_app()
        before = app.get("/comer/pimiento", status=202).json

        first.kill()
        app.get("/comer/pepino", status=503)
        app.get("/readyz", status=503)

        server.start()
        after = app.get("/comer/tomate", status=202).json
        assert app.get("/readyz", status=200).json["ready"] is True
        assert app.get(after["status_url"]).json["state"] == "queued"
        # Only jobs answered with 202 exist: pepino (503) was never stored.
        stored = server.client().hgetall("dramatiq:comer.msgs")
        assert len(stored) == 1 and b"tomate" in next(iter(stored.values()))
        assert before["job_id"] != after["job_id"]
    finally:
        first.stop()
        server.stop()
