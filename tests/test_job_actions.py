"""An operator's actions on jobs (foodapp/search.py, foodapp/views/search.py): cancel, run
now, retry, in bulk, their refusals, the audit, the CLI, and per-job logs; the runs are
counted by a real `dramatiq` worker process (tests/action_actors.py)."""
import json
import re
import subprocess
import sys

import pytest

from foodapp import jobs, joblogs
from foodapp.security import AUDIT
from tests import action_actors
from tests.servers import BIN, ROOT, TESTING_INI, Process, wait_until

UNKNOWN = "7a2d2b8e-3bf0-4f0a-9d1e-4c2b5e8f1a00"


def token(app):
    return re.search(r'data-csrf-token="([^"]+)"', app.get("/ops/jobs").text).group(1)


def post(app, path, body=None, status=200):
    return app.post_json(path, body if body is not None else {}, headers={"X-CSRF-Token": token(app)}, status=status)


def counting_worker(tmp_path, redis_server, threads=2):
    """The real worker command, with the counting actor beside foodapp's."""
    return Process(
        [BIN / "dramatiq", "foodapp.worker", "tests.action_actors", "--processes", "1", "--threads", threads,
         "--worker-shutdown-timeout", "20000", "--queues", "comer"],
        tmp_path / "worker.log",
        env={"FOODAPP_INI": str(TESTING_INI), "FOODAPP_REDIS_URL": redis_server.url, "PYTHONPATH": str(ROOT)},
    )


def stop(worker):
    import signal

    worker.stop(signal.SIGINT)


def runs(client, message):
    return int(client.hget(action_actors.RUNS, message.message_id) or 0)


def state(client, message):
    value = client.hget(jobs.status_key(message.message_id), "state")
    return (value.decode() if isinstance(value, bytes) else value) or None


def events(app, message):
    return [event["event"] for event in app.get(f"/api/jobs/{message.message_id}").json["events"]]


def audit_entries(client):
    return [json.loads(entry) for entry in client.lrange(AUDIT, 0, -1)]


@pytest.fixture
def counted(broker):
    return action_actors.declare(broker)


# --- with a real worker process (slow: e2e) ----------------------------------------------

@pytest.mark.e2e
def test_a_cancelled_queued_job_never_runs_and_its_neighbour_does(tmp_path, app, broker, counted, redis_server):
    client = redis_server.client()
    doomed, kept = counted.send("pan"), counted.send("vino")
    answer = post(app, f"/ops/api/jobs/{doomed.message_id}/cancel").json
    assert answer["ok"] and answer["state"] == "cancelled"
    worker = counting_worker(tmp_path, redis_server).start()
    try:
        wait_until(lambda: state(client, kept) == "done", 60, f"the other job to run\n{worker.output()}")
        # The cancelled one's message was taken and acknowledged without running.
        wait_until(lambda: client.llen("dramatiq:comer") == 0 and client.hlen("dramatiq:comer.msgs") == 0, 30,
                   "the cancelled job's message to be acknowledged")
    finally:
        stop(worker)
    assert runs(client, doomed) == 0 and runs(client, kept) == 1
    assert state(client, doomed) == "cancelled"
    assert events(app, doomed) == ["queued", "cancelled"]
    assert app.get(f"/api/jobs/{doomed.message_id}").json["events"][1]["by"] == "anonymous"
    assert "Traceback" not in worker.output()


@pytest.mark.e2e
def test_a_cancelled_scheduled_job_never_runs_when_it_comes_due_in_the_worker_holding_it(
        tmp_path, app, broker, counted, redis_server):
    client = redis_server.client()
    worker = counting_worker(tmp_path, redis_server).start()
    try:
        later = broker.enqueue(counted.message("cena"), delay=2500)
        # The worker took the delayed copy: it holds it in memory until its eta.
        wait_until(lambda: client.llen("dramatiq:comer.DQ") == 0, 30, "the worker to take the delayed job")
        assert post(app, f"/ops/api/jobs/{later.message_id}/cancel").json["state"] == "cancelled"
        # Its eta passes; the worker acknowledges the delayed copy without queueing it.
        wait_until(lambda: client.hlen("dramatiq:comer.DQ.msgs") == 0, 30,
                   f"the delayed copy to come due and be dropped\n{worker.output()}")
        # Something after it runs, so a queued copy would have run too.
        after = counted.send("postre")
        wait_until(lambda: state(client, after) == "done", 30, "a later job to run")
    finally:
        stop(worker)
    assert runs(client, later) == 0 and state(client, later) == "cancelled"
    assert client.llen("dramatiq:comer") == 0 and client.hlen("dramatiq:comer.msgs") == 0
    assert events(app, later) == ["scheduled", "cancelled"]


@pytest.mark.e2e
def test_run_now_runs_a_scheduled_job_at_once_and_exactly_once(tmp_path, app, broker, counted, redis_server):
    client = redis_server.client()
    worker = counting_worker(tmp_path, redis_server).start()
    try:
        later = broker.enqueue(counted.message("desayuno"), delay=4000)
        wait_until(lambda: client.llen("dramatiq:comer.DQ") == 0, 30, "the worker to take the delayed job")
        answer = post(app, f"/ops/api/jobs/{later.message_id}/run-now").json
        assert answer["ok"] and answer["state"] == "queued"
        wait_until(lambda: state(client, later) == "done", 30, f"the job to run now\n{worker.output()}")
        assert runs(client, later) == 1
        # Its delayed copy, held by the worker, comes due: dropped, not run again.
        wait_until(lambda: client.hlen("dramatiq:comer.DQ.msgs") == 0, 30,
                   f"the delayed copy to come due and be dropped\n{worker.output()}")
        after = counted.send("merienda")
        wait_until(lambda: state(client, after) == "done", 30, "a later job to run")
    finally:
        stop(worker)
    assert runs(client, later) == 1
    assert events(app, later) == ["scheduled", "run now", "started", "done"]
    # Run now again: it is done, so it is refused.
    refused = post(app, f"/ops/api/jobs/{later.message_id}/run-now", status=409).json
    assert "only a scheduled or retrying job can be run now" in refused["message"]


@pytest.mark.e2e
def test_retry_puts_a_dead_job_back_and_it_runs_once_more(tmp_path, app, broker, counted, redis_server):
    client = redis_server.client()
    client.sadd(action_actors.FAILING, "roto")
    worker = counting_worker(tmp_path, redis_server).start()
    try:
        broken = counted.send("roto")
        wait_until(lambda: state(client, broken) == "dead", 60, f"the job to die\n{worker.output()}")
        assert client.zcard("dramatiq:comer.XQ") == 1 and runs(client, broken) == 1
        client.srem(action_actors.FAILING, "roto")
        answer = post(app, f"/ops/api/jobs/{broken.message_id}/retry").json
        assert answer["ok"] and answer["state"] == "queued"
        wait_until(lambda: state(client, broken) == "done", 30, f"the retried job to run\n{worker.output()}")
    finally:
        stop(worker)
    assert runs(client, broken) == 2
    assert client.zcard("dramatiq:comer.XQ") == 0 and client.hlen("dramatiq:comer.XQ.msgs") == 0
    timeline = events(app, broken)
    assert timeline[:3] == ["queued", "started", "dead"] and timeline[3:] == ["retried", "started", "done"]
    job = app.get(f"/api/jobs/{broken.message_id}").json
    assert job["retries"] == 0 and job["result"] == "roto"
    # A done job cannot be retried, nor a second time.
    post(app, f"/ops/api/jobs/{broken.message_id}/retry", status=409)


@pytest.mark.e2e
def test_what_a_job_logs_while_it_runs_is_on_its_page(tmp_path, app, broker, counted, redis_server):
    client = redis_server.client()
    client.sadd(action_actors.FAILING, "quemado")
    worker = counting_worker(tmp_path, redis_server).start()
    try:
        good, bad = counted.send("arroz"), counted.send("quemado")
        for message in (good, bad):
            wait_until(lambda: app.get(f"/ops/api/jobs/{message.message_id}").json["logs"], 60,
                       f"the logs of job {message.message_id}\n{worker.output()}")
        wait_until(lambda: any("Failed to process message" in line["message"]
                               for line in app.get(f"/ops/api/jobs/{bad.message_id}").json["logs"]), 30,
                   "Dramatiq's own line about the failure")
    finally:
        stop(worker)
    logs = app.get(f"/ops/api/jobs/{good.message_id}").json["logs"]
    assert [(line["level"], line["logger"], line["message"]) for line in logs] == [
        ("INFO", "foodapp.tests.action_actors", "counting arroz")]
    assert logs[0]["at"].endswith("Z")
    failed = app.get(f"/ops/api/jobs/{bad.message_id}").json["logs"]
    assert failed[0]["message"] == "counting quemado"
    error = next(line for line in failed if "Failed to process message" in line["message"])
    assert error["level"] == "ERROR" and "ValueError: quemado is not ready" in error["message"]
    page = app.get(f"/ops/jobs/{good.message_id}").text
    assert "counting arroz" in page and "foodapp.tests.action_actors" in page
    # Capped and expiring like the status.
    assert 0 < client.ttl(joblogs.logs_key(good.message_id)) <= 86400


# --- in this process ----------------------------------------------------------------------

def test_the_actions_refuse_what_does_not_apply_with_409_and_say_why(app, broker, counted, worker, redis_client):
    from tests.conftest import drain

    done = counted.send("hecho")
    drain(broker, worker)
    worker.stop()
    queued = counted.send("esperando")
    assert "a worker has it" not in post(app, f"/ops/api/jobs/{done.message_id}/cancel", status=409).json["message"]
    refused = post(app, f"/ops/api/jobs/{done.message_id}/cancel", status=409).json
    assert refused == {"job_id": done.message_id, "ok": False, "status": 409, "state": "done",
                       "message": f"job {done.message_id} cannot be cancelled: it is done; only a scheduled, queued "
                                  "or retrying job can be cancelled"}
    assert "it is queued" in post(app, f"/ops/api/jobs/{queued.message_id}/run-now", status=409).json["message"]
    assert "only a dead or failed job" in post(app, f"/ops/api/jobs/{queued.message_id}/retry", status=409).json["message"]
    # Running: a worker has it.
    redis_client.hset(jobs.status_key(queued.message_id), "state", "running")
    assert "it is running: a worker has it" in \
        post(app, f"/ops/api/jobs/{queued.message_id}/cancel", status=409).json["message"]
    assert post(app, f"/ops/api/jobs/{UNKNOWN}/cancel", status=404).json["status"] == 404
    assert post(app, "/ops/api/jobs/nope/cancel", status=400).json["error"] == "bad_job_id"
    post(app, f"/ops/api/jobs/{UNKNOWN}/eat", status=404)
    # Cancelling twice: the second is refused, the first stays.
    other = counted.send("dos veces")
    post(app, f"/ops/api/jobs/{other.message_id}/cancel")
    assert "it is cancelled" in post(app, f"/ops/api/jobs/{other.message_id}/cancel", status=409).json["message"]
    # GET on an action, POST on the search: 405 naming the method to use.
    assert app.get(f"/ops/api/jobs/{other.message_id}/cancel", status=405).headers["Allow"] == "POST"
    assert app.post("/ops/api/jobs", status=405).headers["Allow"] == "GET"


def test_every_action_needs_the_pages_csrf_token_and_is_audited(app, broker, counted, redis_client):
    message = counted.send("pan")
    app.post_json(f"/ops/api/jobs/{message.message_id}/cancel", {}, status=403)
    app.post_json(f"/ops/api/jobs/{message.message_id}/cancel", {}, headers={"X-CSRF-Token": "guess"}, status=403)
    app.post_json("/ops/api/jobs/bulk", {"action": "cancel", "ids": [message.message_id]}, status=403)
    # Another site's page, even with a token it could not have: its Origin is refused.
    app.post_json(f"/ops/api/jobs/{message.message_id}/cancel", {},
                  headers={"X-CSRF-Token": token(app), "Origin": "http://evil.example"}, status=403)
    assert state(redis_client, message) == "queued" and not audit_entries(redis_client)

    post(app, f"/ops/api/jobs/{message.message_id}/cancel")
    post(app, f"/ops/api/jobs/{message.message_id}/cancel", status=409)
    entries = audit_entries(redis_client)
    assert [entry["action"] for entry in entries] == ["cancel job", "cancel job"]
    assert entries[1]["job_id"] == message.message_id and entries[1]["outcome"] == "cancelled"
    assert "cannot be cancelled" in entries[0]["outcome"] and entries[0]["user"] == "anonymous"


def test_bulk_actions_take_a_list_or_a_search_and_write_one_audit_entry(app, broker, counted, redis_client):
    listed = [counted.send(f"lista{n}") for n in range(3)]
    answer = post(app, "/ops/api/jobs/bulk", {"action": "cancel", "ids": [m.message_id for m in listed] + [UNKNOWN]}).json
    assert answer["count"] == 4 and answer["done"] == 3
    assert [result["status"] for result in answer["results"]] == [200, 200, 200, 404]
    assert all(state(redis_client, m) == "cancelled" for m in listed)

    searched = [counted.send("buscado") for _ in range(4)]
    other = counted.send("otro")
    answer = post(app, "/ops/api/jobs/bulk", {"action": "cancel", "query": {"item": "buscado", "state": "queued"}}).json
    assert answer["count"] == 4 and answer["done"] == 4 and answer["scanned"] == 4
    assert all(state(redis_client, m) == "cancelled" for m in searched) and state(redis_client, other) == "queued"
    # Nothing left to match: a 400 that says so.
    nothing = post(app, "/ops/api/jobs/bulk", {"action": "cancel", "query": {"item": "buscado", "state": "queued"}},
                   status=400).json
    assert "no job matches" in nothing["message"]

    entries = audit_entries(redis_client)
    assert [entry["action"] for entry in entries] == ["bulk cancel", "bulk cancel"]
    assert entries[0]["count"] == 4 and entries[0]["query"] == {"item": "buscado", "state": "queued"}
    assert entries[1]["job_ids"] == [m.message_id for m in listed] + [UNKNOWN]
    events = app.get(f"/api/jobs/{searched[0].message_id}").json["events"]
    assert events[-1]["event"] == "cancelled" and events[-1]["bulk"] is True


@pytest.mark.parametrize("body, field, words", [
    ({"ids": []}, "action", "action must be one of cancel, run-now, retry"),
    ({"action": "eat", "ids": [UNKNOWN]}, "action", "action must be one of"),
    ({"action": "cancel"}, "body", 'either "ids" or "query"'),
    ({"action": "cancel", "ids": [UNKNOWN], "query": {}}, "body", 'either "ids" or "query"'),
    ({"action": "cancel", "ids": []}, "ids", "non-empty list"),
    ({"action": "cancel", "ids": "all"}, "ids", "non-empty list"),
    ({"action": "cancel", "ids": ["nope"]}, "ids", "UUIDs"),
    ({"action": "cancel", "ids": [UNKNOWN] * 1001}, "ids", "at most 1000 per request"),
    ({"action": "cancel", "query": {"state": "eaten"}}, "query_state", "the states are"),
    ({"action": "cancel", "query": "all"}, "query", "an object of search parameters"),
    ([1, 2], "body", '"action" and either'),
])
def test_bad_bulk_input_is_a_400_naming_the_field(app, body, field, words):
    answer = post(app, "/ops/api/jobs/bulk", body, status=400).json
    assert answer["error"] == f"bad_{field}" and words in answer["message"], answer


def test_a_body_that_is_not_json_is_a_400(app):
    answer = app.post("/ops/api/jobs/bulk", "action=cancel&ids=x", headers={"X-CSRF-Token": token(app),
                      "Content-Type": "application/json"}, status=400).json
    assert answer["error"] == "bad_body" and "must be JSON" in answer["message"]


def test_the_pages_forms_work_without_scripts(app, broker, counted, redis_client):
    one, two = counted.send("forma"), counted.send("forma")
    page = app.get(f"/ops/jobs/{one.message_id}")
    form = next(f for f in page.forms.values() if f.action.endswith("/cancel"))
    assert form.submit(status=303).headers["Location"].endswith(f"/ops/jobs/{one.message_id}")
    assert state(redis_client, one) == "cancelled"
    again = app.get(f"/ops/jobs/{one.message_id}")
    assert 'class="state">cancelled' in again.text
    # Only the buttons that apply are shown: a cancelled job has none.
    assert all(f.html.get("hidden") is not None for f in again.forms.values() if "job-action" in (f.html.get("class") or ""))

    listing = app.get("/ops/jobs", params={"item": "forma", "state": "queued"})
    bulk = listing.forms["bulk"]
    bulk.get("ids", index=0).checked = True
    done = bulk.submit("action", value="cancel", status=303)
    assert "/ops/jobs?" in done.headers["Location"] and "item=forma" in done.headers["Location"]
    assert state(redis_client, two) == "cancelled"


def test_the_cli_searches_and_cancels(app, broker, counted, redis_server):
    first, second = counted.send("cli"), counted.send("cli")
    env = {"FOODAPP_REDIS_URL": redis_server.url, "PATH": "/usr/bin:/bin"}

    def cli(*args):
        return subprocess.run([str(BIN / "foodapp"), "-c", str(TESTING_INI), *args], capture_output=True, text=True,
                              env=env, timeout=60)

    found = cli("search", "--item", "cli", "--state", "queued", "--limit", "5")
    assert found.returncode == 0, found.stderr
    assert [json.loads(line)["job_id"] for line in found.stdout.splitlines()] == [second.message_id, first.message_id]
    bad = cli("search", "--state", "eaten")
    assert bad.returncode == 2 and "--state" in bad.stderr and "the states are" in bad.stderr

    cancelled = cli("cancel", first.message_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["state"] == "cancelled"
    again = cli("cancel", first.message_id, second.message_id)
    assert again.returncode == 5
    assert [json.loads(line)["ok"] for line in again.stdout.splitlines()] == [False, True]
    assert cli("cancel", UNKNOWN).returncode == 3
    assert cli("cancel", "nope").returncode == 2
    client = redis_server.client()
    actions = [json.loads(entry)["action"] for entry in client.lrange(AUDIT, 0, -1)]
    assert actions == ["cancel job", "bulk cancel", "cancel job"]  # newest first
    assert json.loads(client.lindex(AUDIT, 2))["user"].startswith("cli:")


def test_job_log_lines_are_dropped_and_counted_never_raised_when_redis_is_down(app, broker, redis_server, caplog):
    import logging

    from foodapp.logcontext import JOB_ID

    handler = joblogs.JobLogHandler()
    logger = logging.getLogger("foodapp.tests.joblogs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        token_ = JOB_ID.set(UNKNOWN)
        logger.info("kept")
        wait_until(lambda: redis_server.client().llen(joblogs.logs_key(UNKNOWN)) == 1, 10, "the line in Redis")
        logger.info("%s", "x" * 5000)
        wait_until(lambda: redis_server.client().llen(joblogs.logs_key(UNKNOWN)) == 2, 10, "the long line")
        stored = json.loads(redis_server.client().lindex(joblogs.logs_key(UNKNOWN), -1))
        assert len(stored["message"].encode()) <= joblogs.MAX_LINE
        for n in range(joblogs.MAX_LINES + 20):
            logger.info("line %d", n)
        wait_until(lambda: json.loads(redis_server.client().lindex(joblogs.logs_key(UNKNOWN), -1))["message"]
                   == f"line {joblogs.MAX_LINES + 19}", 10, "the last line")
        assert redis_server.client().llen(joblogs.logs_key(UNKNOWN)) == joblogs.MAX_LINES

        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="foodapp.joblogs"):
            logger.info("lost")  # returns at once: the writer thread meets the outage
            wait_until(lambda: handler.dropped >= 1, 30, "the line to be dropped and counted")
            wait_until(lambda: any("dropped" in record.getMessage() for record in caplog.records), 30,
                       "the warning about dropped lines")
        JOB_ID.reset(token_)
        logger.info("outside any job")  # not kept at all
    finally:
        logger.removeHandler(handler)
    assert handler.dropped == 1


def test_a_due_copy_moves_on_only_while_its_job_waits_for_it(app, broker, counted, redis_client):
    """What the worker holding a delayed copy does when it comes due (its enqueue, with the
    delayed message's id), after each action: enqueue.lua decides."""
    from dramatiq.common import q_name

    def due(message):
        """The worker's move of a due message: a copy without its eta, same redis message id."""
        moved = message.copy(queue_name=q_name(message.queue_name))
        moved.options.pop("eta", None)
        broker.enqueue(moved)

    # Run now, then the held copy comes due: dropped.
    later = broker.enqueue(counted.message("luego"), delay=60_000)
    post(app, f"/ops/api/jobs/{later.message_id}/run-now")
    due(later)
    assert redis_client.llen("dramatiq:comer") == 1 and state(redis_client, later) == "queued"
    assert events(app, later) == ["scheduled", "run now"]

    # Cancelled while scheduled: dropped.
    cancelled = broker.enqueue(counted.message("nunca"), delay=60_000)
    post(app, f"/ops/api/jobs/{cancelled.message_id}/cancel")
    due(cancelled)
    assert redis_client.llen("dramatiq:comer") == 1 and state(redis_client, cancelled) == "cancelled"

    # Untouched: it moves on, once; the same move again (a redelivered copy) is dropped.
    plain = broker.enqueue(counted.message("a su hora"), delay=60_000)
    due(plain)
    due(plain)
    assert redis_client.llen("dramatiq:comer") == 2 and state(redis_client, plain) == "queued"
    assert events(app, plain) == ["scheduled", "due"]

    # A queued message with an eta (requeued from the dead letters) moves on, unless cancelled.
    requeued = counted.send("otra vez")
    stored = requeued.copy(options={"eta": requeued.message_timestamp})
    due(stored)
    assert state(redis_client, requeued) == "queued" and redis_client.llen("dramatiq:comer") == 4
    post(app, f"/ops/api/jobs/{requeued.message_id}/cancel")
    due(stored)
    assert state(redis_client, requeued) == "cancelled" and redis_client.llen("dramatiq:comer") == 4


def test_a_body_that_does_not_parse_as_a_form_is_a_400_not_a_500(app):
    for path in ("/ops/api/jobs/bulk", f"/ops/api/jobs/{UNKNOWN}/cancel"):
        answer = app.post(path, b"--x", headers={"Content-Type": "multipart/form-data"}, status=(400, 403)).json
        assert answer["error"] in ("bad_form", "bad_csrf_token"), answer
