"""Workers under supervisord (supervisor/production.conf): stopped, killed, poisoned, started
without Redis, or all lost at once with their host. No job is lost; each test counts how many
times every job started, and only a job its worker died running starts again.
"""
import json
import os
import signal
import time

import dramatiq
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_app
from tests.hosts import Host
from tests.runs import assert_reruns_only_after_crashes, counts, read_runs
from tests.servers import RedisServer, free_port, http, wait_until

pytestmark = pytest.mark.drill


def job(web_url, job_id):
    return http("GET", f"{web_url}/api/jobs/{job_id}")[2]


def wait_job(web_url, job_id, condition, timeout, what):
    return wait_until(lambda: (j := job(web_url, job_id)) and condition(j) and j, timeout, what, interval=0.1)


def order(web_url, queue, item):
    status, _, body = http("GET", f"{web_url}/{queue}/{item}")
    assert status == 202, body
    return body["job_id"]


def events(j, name):
    return [event for event in j["events"] if event["event"] == name]


def ledger(redis_server):
    return {k: json.loads(v) for k, v in redis_server.client(decode_responses=True).hgetall("foodapp:ledger").items()}


def runs_of(redis_server, job_ids):
    return read_runs(redis_server.client(), job_ids)


def test_production_conf_has_the_seeds_layout():
    from configparser import ConfigParser
    from pathlib import Path

    conf = ConfigParser(interpolation=None)
    conf.read(Path(__file__).resolve().parent.parent / "supervisor" / "production.conf")
    assert conf["program:workers"]["numprocs"] == "8" and "--queues comer beber" in conf["program:workers"]["command"]
    assert conf["program:batch"]["numprocs"] == "5" and "--queues batch" in conf["program:batch"]["command"]
    for program in ("program:workers", "program:batch"):
        section = conf[program]
        shutdown_ms = int(section["command"].split("--worker-shutdown-timeout ")[1].split()[0])
        assert int(section["stopwaitsecs"]) * 1000 > shutdown_ms
        assert section["stopasgroup"] == section["killasgroup"] == section["autorestart"] == "true"
        assert "FOODAPP_INI" in section["environment"] and "--pid-file" in section["command"]


def test_a_stopped_worker_finishes_its_job_or_hands_it_back(tmp_path, redis_server):
    host = Host(tmp_path, "a", redis_server.url, workers=2, settings={"kitchen.preparation_seconds": "2"})
    try:
        host.start()
        job_ids = [order(host.url, "comer", f"plato{i}") for i in range(4)]
        running = wait_job(host.url, job_ids[0], lambda j: j["state"] == "running", 30, "the first job to run")
        program = host.program_of(running["worker_pid"])
        assert program and program.startswith("workers:")

        # Graceful stop in the middle of the job: supervisorctl returns once it has stopped.
        host.ctl("stop", program)
        assert host.status()[program][0] == "STOPPED"
        for job_id in job_ids:
            wait_job(host.url, job_id, lambda j: j["state"] == "done", 60, f"job {job_id} to be done")
        assert job(host.url, job_ids[0])["worker_pid"] == running["worker_pid"]
        assert sorted(ledger(redis_server)) == sorted(job_ids)
        # A graceful stop: the job in hand is finished, the prefetched ones handed back unstarted.
        assert counts(runs_of(redis_server, job_ids)) == dict.fromkeys(job_ids, 1)
    finally:
        host.stop()


def test_a_worker_killed_mid_job_has_its_job_run_again_within_the_heartbeat_timeout(tmp_path, redis_server):
    host = Host(tmp_path, "a", redis_server.url, workers=2, settings={"kitchen.preparation_seconds": "2"})
    try:
        host.start()
        # One job per worker and one queued: only the killed worker's job may run twice.
        job_ids = [order(host.url, "comer", item) for item in ("paella", "gazpacho", "tortilla")]
        job_id = job_ids[0]
        running = wait_job(host.url, job_id, lambda j: j["state"] == "running", 30, "the job to run")
        killed_at = time.monotonic()
        os.kill(running["worker_pid"], signal.SIGKILL)

        rerun = wait_job(host.url, job_id, lambda j: len(events(j, "started")) == 2, 60, "the job to start again")
        recovery = time.monotonic() - killed_at
        print(f"\nworker kill -9 -> job running again: {recovery:.1f} s (heartbeat timeout 5 s)")
        assert rerun["worker_pid"] != running["worker_pid"]
        assert rerun["crashes"] == 1 and events(rerun, "requeued")

        done = wait_job(host.url, job_id, lambda j: j["state"] == "done", 60, "the job to be done")
        for other in job_ids[1:]:
            wait_job(host.url, other, lambda j: j["state"] == "done", 60, f"job {other} to be done")
        assert sorted(ledger(redis_server)) == sorted(job_ids)
        assert done["result"]["worker_pid"] == done["worker_pid"]
        runs = runs_of(redis_server, job_ids)
        assert counts(runs) == {job_id: 2, job_ids[1]: 1, job_ids[2]: 1}
        assert_reruns_only_after_crashes(runs)
        # supervisord started the killed worker again.
        wait_until(lambda: all(s == "RUNNING" for s, _ in host.status().values()), 30, "the worker to be restarted")
    finally:
        host.stop()


def test_a_job_that_kills_its_worker_is_dead_lettered_after_max_crashes(tmp_path, redis_server, monkeypatch):
    host = Host(tmp_path, "a", redis_server.url, workers=2, modules=["tests.poison_actors"])
    try:
        host.start()
        monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
        make_app()
        message = dramatiq.get_broker().enqueue(dramatiq.Message(
            queue_name="comer", actor_name="poison", args=("seta venenosa",), kwargs={}, options={},
        ))
        dead = wait_job(host.url, message.message_id, lambda j: j["state"] == "dead", 120, "the poison job to die")
        assert dead["error"] == "worker crashed 3 times" and dead["crashes"] == 3
        assert len(events(dead, "started")) == 3 and len(events(dead, "requeued")) == 2

        client = redis_server.client()
        assert client.zcard("dramatiq:comer.XQ") == 1 and client.llen("dramatiq:comer") == 0
        page = http("GET", f"{host.url}/jobs/queues/comer/failed")[2]
        assert "seta venenosa" in page
        outcomes = {(s.labels["queue"], s.labels["outcome"]): s.value
                    for family in text_string_to_metric_families(http("GET", f"{host.url}/metrics")[2])
                    for s in family.samples if s.name == "foodapp_jobs_total"}
        assert outcomes[("comer", "crashed")] == 3 and outcomes[("comer", "dead")] == 1

        # The workers are back and still take ordinary jobs.
        job_id = order(host.url, "comer", "pan")
        wait_job(host.url, job_id, lambda j: j["state"] == "done", 60, "an ordinary job after the poison")
    finally:
        host.stop()


def test_workers_started_before_redis_run_jobs_once_it_answers(tmp_path):
    port = free_port()
    host = Host(tmp_path, "a", f"redis://127.0.0.1:{port}/0", workers=1)
    redis_server = RedisServer(tmp_path, port=port)
    try:
        host.start()
        assert http("GET", f"{host.url}/comer/pan")[0] == 503
        # Dramatiq's consumer says so, naming the port nothing listens on yet.
        refused = f"Consumer encountered a connection error: Error 111 connecting to 127.0.0.1:{port}. Connection refused."
        wait_until(lambda: refused in host.log("workers:workers_00"), 30, "the worker to report that Redis does not answer")
        redis_server.start()
        job_id = order(host.url, "comer", "pan")
        wait_job(host.url, job_id, lambda j: j["state"] == "done", 60, "the job to be done")
        assert host.status()["workers:workers_00"][0] == "RUNNING"
        assert counts(runs_of(redis_server, [job_id])) == {job_id: 1}
    finally:
        host.stop()
        redis_server.stop()


def test_host_b_dies_and_host_a_runs_every_job_b_held(tmp_path, redis_server):
    a = Host(tmp_path, "a", redis_server.url, workers=2, settings={"kitchen.preparation_seconds": "3"})
    b = Host(tmp_path, "b", redis_server.url, workers=2, settings={"kitchen.preparation_seconds": "3"})
    try:
        # Both hosts boot at the same time (each start is a wait of ~2.5 s for supervisord's
        # startsecs), then each is waited for as before.
        a.start(wait=False)
        b.start(wait=False)
        a.wait_running()
        b.wait_running()
        # A's workers wait, so that B's take the first jobs.
        a.ctl("stop", "workers:*")
        job_ids = [order(b.url, queue, f"{queue}{i}") for i in range(4) for queue in ("comer", "beber")]
        b_pids = set(b.pids())

        def running_on_b():
            jobs = [job(a.url, job_id) for job_id in job_ids]
            return [j["job_id"] for j in jobs if j["state"] == "running" and j["worker_pid"] in b_pids]
        wait_until(lambda: len(running_on_b()) == 2, 30, "both of B's workers to hold a job")
        a.ctl("start", "workers:*")

        b.kill_all()
        # What B held when it died: nothing changes it until the sweep, a heartbeat timeout later.
        held = running_on_b()
        assert held
        for job_id in job_ids:
            wait_job(a.url, job_id, lambda j: j["state"] == "done", 90, f"job {job_id} to be done by host A")
        entries = ledger(redis_server)
        assert sorted(entries) == sorted(job_ids)
        for job_id in held:
            assert entries[job_id]["worker_pid"] not in b_pids
        # B's held jobs ran on B and again on A; the others, fetched by B or not, ran once.
        runs = runs_of(redis_server, job_ids)
        assert counts(runs) == {job_id: 2 if job_id in held else 1 for job_id in job_ids}
        assert {job_id: run.crashes for job_id, run in runs.items()} == {job_id: int(job_id in held) for job_id in job_ids}
    finally:
        a.stop()
        b.stop()
