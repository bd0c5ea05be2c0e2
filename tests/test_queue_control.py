"""Queue control: pause, resume, purge and latency, with the real `dramatiq` worker and Redis.

A paused queue takes orders but no worker starts them; resumed, they all run, in order, each
once. A pause that comes while a worker is busy lets its running jobs finish and gives the
ones it fetched but did not start back to the head of the queue, in order. A purge cancels
the waiting jobs (they never run) and leaves delayed jobs and dead letters alone.
"""
import json
import re
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from foodapp import queues
from foodapp.jobs import status_key
from tests.conftest import start_worker
from tests.hosts import set_ini
from tests.runs import counts, read_runs
from tests.servers import BIN, TESTING_INI, Worker, wait_until
from tests.test_ops import dead_letter, production_login  # noqa: F401  (a fixture)
from tests.test_redis_acl import APP_ENV, acl_redis  # noqa: F401  (a fixture)

pytestmark = pytest.mark.e2e

PAUSED_LOG = "queue comer paused by {}: not taking jobs"
RESUMED_LOG = "queue comer resumed"


def csrf_token(app):
    """The token the console's pages carry (body data-csrf-token), as its scripts send it."""
    page = app.get("/ops")
    return re.search(r'data-csrf-token="([^"]+)"', page.text).group(1)


def post(app, path, token, status=200, body=None):
    headers = {"X-CSRF-Token": token} if token else {}
    if body is not None:
        return app.post_json(path, body, headers=headers, status=status).json
    return app.post(path, headers=headers, status=status).json


def foodapp(redis_url, *args):
    result = subprocess.run([BIN / "foodapp", "-c", TESTING_INI, *args], capture_output=True, text=True,
                            timeout=60, env={"FOODAPP_REDIS_URL": redis_url, "PATH": str(BIN)})
    return result.returncode, (json.loads(result.stdout) if result.stdout.strip() else None), result.stderr


def states(app, job_ids):
    return [app.get(f"/api/jobs/{job_id}").json["state"] for job_id in job_ids]


def held(client, queue="comer"):
    """How many messages of ``queue`` the workers hold (their ack sets): fetched, not acked."""
    workers = [worker.decode() for worker in client.zrange("dramatiq:__heartbeats__", 0, -1)]
    return sum(client.scard(f"dramatiq:__acks__.{worker}.{queue}") for worker in workers)


def queued_job_ids(client, queue="comer"):
    """The job ids in the queue's list, head first."""
    rids = client.lrange(f"dramatiq:{queue}", 0, -1)
    bodies = client.hmget(f"dramatiq:{queue}.msgs", rids) if rids else []
    return [json.loads(body)["message_id"] for body in bodies]


def audit_entries(client):
    return [json.loads(entry) for entry in client.lrange("foodapp:audit", 0, -1)]


def idle(client):
    """A worker is idle on the wake list: its blocking waits have started."""
    return client.info("commandstats").get("cmdstat_blpop", {}).get("calls", 0) >= 2


def test_a_paused_queue_takes_orders_that_run_in_order_once_resumed(tmp_path, redis_server, app):
    client = redis_server.client()
    worker = Worker(tmp_path, redis_server.url, queues=("comer",), threads=1)
    try:
        worker.start()
        wait_until(lambda: idle(client), 30, "the worker to wait for work")
        token = csrf_token(app)
        paused = post(app, "/ops/api/queues/comer/pause", token)
        assert paused["paused"]["by"] == "anonymous"
        # The idle worker, blocked on its wake list, notices and says so.
        wait_until(lambda: PAUSED_LOG.format("anonymous") in worker.output(), 30, "the worker to log the pause")

        job_ids = [app.get(f"/comer/plato{i}", status=202).json["job_id"] for i in range(6)]
        # Each order pushed a wake token: once the worker has taken them all, a fetch ran
        # after the last order, and took nothing.
        wait_until(lambda: client.llen("dramatiq:comer.wake") == 0, 30, "the worker to wake for every order")
        assert states(app, job_ids) == ["queued"] * 6
        assert held(client) == 0 and queued_job_ids(client) == job_ids
        described = {queue["name"]: queue for queue in app.get("/ops/api/queues").json["queues"]}
        assert described["comer"]["queued"] == 6 and described["comer"]["paused"]["by"] == "anonymous"
        assert described["comer"]["latency_seconds"] > 0 and described["beber"]["latency_seconds"] == 0

        resumed = post(app, "/ops/api/queues/comer/resume", token)
        assert resumed["was_paused"]["by"] == "anonymous"
        wait_until(lambda: states(app, job_ids) == ["done"] * 6, 60, "the six jobs to be done", interval=0.1)
        runs = read_runs(client, job_ids)
        assert counts(runs) == dict.fromkeys(job_ids, 1)
        assert sorted(job_ids, key=lambda job_id: runs[job_id].starts[0]) == job_ids, "not run first in, first out"
        wait_until(lambda: RESUMED_LOG in worker.output(), 30, "the worker to log the resume")
        log = worker.output()
        assert log.count(PAUSED_LOG.format("anonymous")) == 1 and log.count(RESUMED_LOG) == 1, log[-3000:]
        assert [(e["action"], e["user"], e["queue"]) for e in audit_entries(client)] == [
            ("resume queue", "anonymous", "comer"), ("pause queue", "anonymous", "comer")]
    finally:
        worker.stop()
    assert "Traceback" not in worker.output(), worker.output()[-3000:]


def test_a_busy_worker_finishes_its_jobs_and_gives_back_the_rest_in_order_and_a_purge_cancels_them(
        tmp_path, redis_server, app):
    client = redis_server.client()
    ini = tmp_path / "slow.ini"
    # Jobs longer than the second a worker may take to notice a pause.
    ini.write_text(set_ini(TESTING_INI.read_text(), **{"kitchen.preparation_seconds": "3"}))
    # Two threads: two jobs running and two more fetched (its prefetch), waiting for a thread.
    worker = Worker(tmp_path, redis_server.url, queues=("comer",), threads=2, ini=ini)
    try:
        worker.start()
        job_ids = [app.get(f"/comer/tapa{i}", status=202).json["job_id"] for i in range(12)]
        wait_until(lambda: states(app, job_ids[:2]) == ["running"] * 2 and held(client) == 4, 30,
                   "two jobs to run and two more to be fetched")
        post(app, "/ops/api/queues/comer/pause", csrf_token(app))
        wait_until(lambda: PAUSED_LOG.format("anonymous") in worker.output(), 30, "the worker to log the pause")

        def settled():
            found = states(app, job_ids)
            return "running" not in found and held(client) == 0 and found
        found = wait_until(settled, 30, "the running jobs to finish and the others to be given back")
        done = [job_id for job_id, state in zip(job_ids, found) if state == "done"]
        waiting = [job_id for job_id, state in zip(job_ids, found) if state == "queued"]
        # The two running ran, once; the two fetched never started and are back at the head
        # of the queue, before the others, in order.
        assert done == job_ids[:2] and waiting == job_ids[2:], found
        assert queued_job_ids(client) == waiting
        assert "gave back 2 job(s) of paused queue comer" in worker.output()
        assert counts(read_runs(client, job_ids)) == {job_id: int(job_id in done) for job_id in job_ids}

        # Purging needs --yes; without it nothing changes.
        code, _, error = foodapp(redis_server.url, "purge", "comer")
        assert code == 2 and "--yes" in error and "nothing was changed" in error
        assert queued_job_ids(client) == waiting
        code, purged, _ = foodapp(redis_server.url, "purge", "comer", "--yes")
        assert code == 0 and purged["purged"] == len(waiting)
        assert client.llen("dramatiq:comer") == 0 and client.hlen("dramatiq:comer.msgs") == 0

        code, _, _ = foodapp(redis_server.url, "resume", "comer")
        assert code == 0
        after = app.get("/comer/postre", status=202).json["job_id"]
        wait_until(lambda: states(app, [after]) == ["done"], 30, "an order after the resume to be done")
        assert set(states(app, waiting)) == {"cancelled"}
        job = app.get(f"/api/jobs/{waiting[0]}").json
        assert [e["event"] for e in job["events"]] == ["queued", "purged"] and "finished_at" in job
        assert counts(read_runs(client, waiting)) == dict.fromkeys(waiting, 0)
        wait_until(lambda: RESUMED_LOG in worker.output(), 30, "the worker to log the resume")

        # The command line pauses and resumes as well, in the name of the OS user.
        code, paused, _ = foodapp(redis_server.url, "pause", "comer")
        user = paused["paused"]["by"]
        assert code == 0 and user.startswith("cli:")
        wait_until(lambda: PAUSED_LOG.format(user) in worker.output(), 30, "the worker to log the second pause")
        assert foodapp(redis_server.url, "resume", "comer")[0] == 0
        wait_until(lambda: worker.output().count(RESUMED_LOG) == 2, 30, "the worker to log the second resume")
        log = worker.output()
        assert log.count(PAUSED_LOG.format("anonymous")) == 1 and log.count(PAUSED_LOG.format(user)) == 1, log[-3000:]
        assert [(e["action"], e["user"], e.get("count")) for e in audit_entries(client)] == [
            ("resume queue", user, None), ("pause queue", user, None), ("resume queue", user, None),
            ("purge queue", user, len(waiting)), ("pause queue", "anonymous", None)]
    finally:
        worker.stop()
    assert "Traceback" not in worker.output(), worker.output()[-3000:]


def test_a_purge_leaves_delayed_jobs_and_dead_letters_and_cancelled_jobs_never_run(app, broker, worker, redis_client):
    dead_letter(broker, worker, "piedra")
    worker.stop()
    token = csrf_token(app)
    job_ids = [app.get(f"/comer/sopa{i}", status=202).json["job_id"] for i in range(5)]
    later = app.get("/comer/cena?delay=3600", status=202).json["job_id"]
    other = app.get("/beber/agua", status=202).json["job_id"]

    refused = post(app, "/ops/api/queues/comer/purge", token, status=400)
    assert refused["error"] == "confirm_purge" and '{"confirm": "comer"}' in refused["message"]
    post(app, "/ops/api/queues/comer/purge", token, status=400, body={"confirm": "beber"})
    assert redis_client.llen("dramatiq:comer") == 5
    purged = post(app, "/ops/api/queues/comer/purge", token, body={"confirm": "comer"})
    assert purged["purged"] == 5 and "delayed" in purged["not_purged"] and "dead letters" in purged["not_purged"]

    assert redis_client.llen("dramatiq:comer") == 0 and redis_client.hlen("dramatiq:comer.msgs") == 0
    assert redis_client.hlen("dramatiq:comer.DQ.msgs") == 1 and redis_client.zcard("dramatiq:comer.XQ") == 1
    assert redis_client.llen("dramatiq:beber") == 1
    assert states(app, job_ids) == ["cancelled"] * 5
    assert states(app, [later, other]) == ["scheduled", "queued"]

    again = start_worker(broker)
    try:
        wait_until(lambda: states(app, [other]) == ["done"], 30, "the other queue's job to run")
    finally:
        again.stop()
    assert states(app, job_ids) == ["cancelled"] * 5 and redis_client.llen("dramatiq:comer") == 0
    assert counts(read_runs(redis_client, job_ids)) == dict.fromkeys(job_ids, 0)
    assert audit_entries(redis_client)[0] == {**audit_entries(redis_client)[0], "user": "anonymous",
                                              "action": "purge queue", "queue": "comer", "count": 5}


def test_a_large_queue_is_purged_in_short_chunks(app, broker, redis_client):
    total = 20_000
    message = broker.get_actor("comer").message
    for first in range(0, total, 1000):
        broker.enqueue_many([(message(f"grano{i}"), None) for i in range(first, first + 1000)])
    sample = queued_job_ids(redis_client)[::4999]
    calls = lambda: redis_client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)  # noqa: E731
    before = calls()
    assert queues.purge(broker, "comer") == total
    # One short script per chunk of queues.PURGE_CHUNK jobs, never one for the whole queue.
    assert calls() - before >= total // queues.PURGE_CHUNK
    assert redis_client.llen("dramatiq:comer") == 0 and redis_client.hlen("dramatiq:comer.msgs") == 0
    assert {redis_client.hget(status_key(job_id), "state") for job_id in sample} == {"cancelled"}


def test_a_purge_ends_at_the_job_last_in_the_queue_when_it_began(app, broker, redis_client):
    for i in range(10):
        app.get(f"/comer/pan{i}", status=202)
    last = redis_client.lrange("dramatiq:comer", -1, -1)[0]
    # As if an order came between two chunks: after the job that was last, it stays.
    app.get("/comer/tarde", status=202)
    key = "dramatiq:comer"
    script = redis_client.register_script(queues.jobs.composed("purge"))
    taken, done = script(keys=[key, f"{key}.msgs", "foodapp:job:"], args=[100, last, 60, '{"event":"purged"}', 1])
    assert (taken, done) == (10, 1)
    assert redis_client.llen(key) == 1
    assert queues.purge(broker, "comer", chunk=3) == 1


def test_queue_api_errors_and_audit(app, redis_client):
    token = csrf_token(app)
    missing = post(app, "/ops/api/queues/cenar/pause", token, status=404)
    assert missing["error"] == "no_such_queue" and "comer" in missing["message"]
    # No token (a cross-site request cannot read it): refused, nothing paused.
    assert post(app, "/ops/api/queues/comer/pause", None, status=403)["error"] == "bad_csrf_token"
    assert post(app, "/ops/api/queues/comer/pause", "guess", status=403)["error"] == "bad_csrf_token"
    app.post("/ops/api/queues/comer/pause", headers={"X-CSRF-Token": token, "Origin": "http://evil.example"},
             status=403)
    assert redis_client.hlen("foodapp:paused") == 0 and audit_entries(redis_client) == []
    assert app.get("/ops/api/queues/comer/pause", status=405).json["error"] == "method_not_allowed"

    first = post(app, "/ops/api/queues/comer/pause", token)["paused"]
    assert post(app, "/ops/api/queues/comer/pause", token)["paused"] == first  # the first pause stands
    assert set(json.loads(redis_client.hget("foodapp:paused", "comer"))) == {"by", "at"}
    metrics = {(s.name, s.labels.get("queue")): s.value
               for family in text_string_to_metric_families(app.get("/metrics").text) for s in family.samples}
    assert metrics[("foodapp_queue_paused", "comer")] == 1 and metrics[("foodapp_queue_paused", "beber")] == 0
    assert metrics[("foodapp_queue_latency_seconds", "comer")] == 0
    assert post(app, "/ops/api/queues/comer/resume", token)["was_paused"] == first
    assert post(app, "/ops/api/queues/comer/resume", token)["was_paused"] is None
    assert [e["action"] for e in audit_entries(redis_client)] == ["resume queue", "resume queue", "pause queue",
                                                                  "pause queue"]


def test_the_actions_name_the_logged_in_user(production_login, redis_client):  # noqa: F811
    app = production_login
    post(app, "/ops/api/queues/comer/pause", None, status=401)
    app.authorization = ("Basic", ("jefe", "cocina secreta"))
    token = csrf_token(app)
    assert post(app, "/ops/api/queues/comer/pause", token)["paused"]["by"] == "jefe"
    assert app.get("/ops/api/queues").json["queues"][2]["paused"]["by"] == "jefe"
    entry = audit_entries(redis_client)[0]
    assert (entry["user"], entry["action"], entry["queue"]) == ("jefe", "pause queue", "comer")


def test_queue_control_runs_as_the_apps_acl_user(tmp_path, acl_redis, monkeypatch):  # noqa: F811
    """Pause, resume, describe, purge, and a worker's pause-aware fetch use only commands the
    deploy/redis ACL user has (deploy/redis/users.acl.in)."""
    from dramatiq import Message

    from tests.conftest import make_app

    admin = acl_redis.client(decode_responses=True)
    worker = Worker(tmp_path, acl_redis.url, queues=("comer",), env=APP_ENV)
    monkeypatch.setenv("FOODAPP_REDIS_URL", acl_redis.url)
    for name, value in APP_ENV.items():
        monkeypatch.setenv(name, value)
    app = make_app()
    try:
        worker.start()
        token = csrf_token(app)
        post(app, "/ops/api/queues/comer/pause", token)
        wait_until(lambda: PAUSED_LOG.format("anonymous") in worker.output(), 30, "the worker to log the pause")
        # A job as an enqueue stores it (written here as the admin: only the purge is tested).
        message = Message(queue_name="comer", actor_name="comer", args=("pan",), kwargs={},
                          options={"redis_message_id": "rid-1"})
        admin.hset("dramatiq:comer.msgs", "rid-1", message.encode())
        admin.rpush("dramatiq:comer", "rid-1")
        admin.hset(status_key(message.message_id), mapping={"state": "queued", "queue": "comer"})
        wait_until(lambda: admin.llen("dramatiq:comer.wake") == 0, 30, "the paused worker to wake and fetch")
        assert app.get("/ops/api/queues").json["queues"][2]["queued"] == 1
        assert post(app, "/ops/api/queues/comer/purge", token, body={"confirm": "comer"})["purged"] == 1
        assert admin.hget(status_key(message.message_id), "state") == "cancelled"
        post(app, "/ops/api/queues/comer/resume", token)
        wait_until(lambda: RESUMED_LOG in worker.output(), 30, "the worker to log the resume")
        app.get("/metrics", status=200)
        # Judged on what queue control sends (other parts of foodapp have their own test):
        # anything refused inside a script, and its own commands.
        ours = {"evalsha", "eval", "script|load", "hget", "hsetnx", "hdel", "hgetall", "rpush", "ltrim", "zcard",
                "llen", "lrange", "hlen", "blpop", "zadd", "lpop", "sadd", "smembers", "srem", "wait"}
        refused = [entry for entry in admin.acl_log() if entry["context"] == "lua" or entry["object"] in ours]
        assert not refused, f"commands refused to the app's user: {refused}"
    finally:
        worker.stop()
