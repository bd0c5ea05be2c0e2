"""An action that was done is answered as done, even when its audit entry cannot be stored:
the answer must not say "Redis did not answer, try again" (503) for a job that is queued, or
a second press makes a second job. The entry then goes to the error log, whole."""
import json
import logging
import re

import pytest

from foodapp.jobs import status_key
from tests.conftest import make_app


@pytest.fixture
def console(redis_server, monkeypatch):
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    monkeypatch.setenv("FOODAPP_PERIODIC_JOBS", "nightly = 0 3 * * * report")
    app = make_app()
    token = re.search(r'data-csrf-token="([^"]+)"', app.get("/ops/periodic", status=200).text).group(1)
    return app, {"X-CSRF-Token": token}


def test_run_now_and_a_pause_are_answered_as_done_when_the_audit_log_cannot_be_written(console, redis_client,
                                                                                         caplog):
    app, headers = console
    redis_client.set("foodapp:audit", "not a list")  # every LPUSH to it now fails (WRONGTYPE)
    with caplog.at_level(logging.ERROR, logger="foodapp.security"):
        answer = app.post("/ops/api/periodic/nightly/run", headers=headers, status=202).json
        assert redis_client.hget(status_key(answer["job_id"]), "actor") == "report"
        assert redis_client.llen("dramatiq:batch") == 1

        paused = app.post_json("/ops/api/queues/comer/pause", {}, headers=headers, status=200).json
        assert json.loads(redis_client.hget("foodapp:paused", "comer"))["by"] == paused["paused"]["by"]

    lost = [record.getMessage() for record in caplog.records if "audit" in record.getMessage()]
    assert len(lost) == 2, lost
    assert answer["job_id"] in lost[0] and "run periodic job now" in lost[0], lost
    assert "pause" in lost[1] and "comer" in lost[1], lost


def test_run_now_is_answered_as_done_when_its_last_run_cannot_be_recorded(console, redis_client):
    app, headers = console
    redis_client.set("foodapp:periodic", "not a hash")  # the last-run record now fails (WRONGTYPE)
    answer = app.post("/ops/api/periodic/nightly/run", headers=headers, status=202).json
    assert redis_client.hget(status_key(answer["job_id"]), "actor") == "report"
    audit = [json.loads(entry) for entry in redis_client.lrange("foodapp:audit", 0, -1)]
    assert [(e["action"], e["job_id"]) for e in audit] == [("run periodic job now", answer["job_id"])]
