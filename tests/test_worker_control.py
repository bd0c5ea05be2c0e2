"""The console's Workers page and API on a real host: supervisord running
supervisor/production.conf (shrunk: 2 queue workers, 1 batch worker, 2 web processes),
real `dramatiq` workers and real waitress, whose supervisor.url is that supervisord's socket
(testing.ini's ``unix://%(here)s/var/run/supervisor.sock``, as in production).

The processes are listed with what their heartbeats say (pid, RSS, CPU, busy, done), stopped,
started and restarted through supervisord's XML-RPC; refused without the page's CSRF token
or from another origin; audited; a supervisord that does not answer is a 503 that says so;
and `foodapp workers` prints the same list.
"""
import json
import re
import subprocess
import threading

import pytest

from foodapp.heartbeat import Load
from tests.conftest import make_app
from tests.hosts import Host
from tests.servers import BIN, RedisServer, free_port, http, wait_until

pytestmark = pytest.mark.e2e

WORKER = "workers:workers_01"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    # Short paths: supervisord's socket path must fit in a unix socket address (108 bytes).
    directory = tmp_path_factory.mktemp("wc")
    redis_server = RedisServer(directory).start()
    host = Host(directory, "a", redis_server.url, workers=2, batch=1, threads=2)
    host.redis = redis_server
    try:
        host.start()
        wait_until(lambda: len(alive(listing(host))) == 3, 60, "the three workers to beat")
        yield host
    finally:
        host.stop()
        redis_server.stop()


def listing(host):
    status, _, body = http("GET", f"{host.url}/ops/api/workers")
    assert status == 200, body
    return body


def alive(body):
    return [p for p in body["processes"] if p["state"] in ("alive", "late")]


def session(host):
    """The page's CSRF token and its cookie, as a browser holding the page has them."""
    status, headers, page = http("GET", f"{host.url}/ops/workers")
    assert status == 200
    token = re.search(r'data-csrf-token="([^"]+)"', page).group(1)
    cookie = headers["Set-Cookie"].split(";")[0]
    return {"X-CSRF-Token": token, "Cookie": cookie, "Origin": host.url}


def act(host, program, action, headers=None, method="POST"):
    return http(method, f"{host.url}/ops/api/workers/{program}/{action}", timeout=120,
                headers=session(host) if headers is None else headers, body=b"" if method == "POST" else None)


def audit_entries(host):
    return [json.loads(entry) for entry in host.redis.client().lrange("foodapp:audit", 0, -1)]


def test_the_api_lists_every_worker_process_with_what_it_does(host):
    job_ids = [http("GET", f"{host.url}/comer/plato{i}")[2]["job_id"] for i in range(8)]
    for job_id in job_ids:
        wait_until(lambda: http("GET", f"{host.url}/api/jobs/{job_id}")[2]["state"] == "done", 60, f"job {job_id}")

    def counted():
        body = listing(host)
        queue_workers = [p for p in alive(body) if "comer" in p["queues"]]
        return sum(p["done"] for p in queue_workers) >= len(job_ids) and body
    body = wait_until(counted, 30, "the heartbeats to count the jobs done", interval=0.2)

    status = host.status()
    mains = {pid: name for name, (state, pid) in status.items() if state == "RUNNING"}
    processes = alive(body)
    assert sorted(p["control"] for p in processes) == ["batch:batch_00", "workers:workers_00", "workers:workers_01"]
    for process in processes:
        # Tied to the program by its Dramatiq main process: the pid supervisord reports.
        assert mains[process["ppid"]] == process["control"] == process["program"]
        assert process["supervisor_state"] == "RUNNING" and process["host"] == body["host"]
        assert process["pid"] != process["ppid"] and process["name"].endswith(f":{process['pid']}")
        assert process["rss_bytes"] > 10 * 2 ** 20 and process["cpu_percent"] >= 0
        assert process["busy"] == 0 and process["uptime_seconds"] > 0 and process["started_at"]
        assert process["silent_seconds"] < 5 and process["last_heartbeat"] and process["in_flight"] == {}
        assert process["threads"] == (1 if process["control"].startswith("batch:") else 2)
    assert body["supervisor"]["reachable"] and body["supervisor"]["url"].endswith("/a/var/run/supervisor.sock")
    # The programs the console controls: workers and batch, never the web processes.
    assert {p["name"]: (p["state"], p["beating"]) for p in body["programs"]} == {
        "workers:workers_00": ("RUNNING", True), "workers:workers_01": ("RUNNING", True),
        "batch:batch_00": ("RUNNING", True)}

    page = http("GET", f"{host.url}/ops/workers")[2]
    assert 'data-program="workers:workers_01"' in page and "state-alive" in page and "/ops/static/workers.js" in page


def test_stop_start_and_restart_through_supervisord(host):
    before = {p["control"]: p for p in alive(listing(host))}[WORKER]

    status, _, body = act(host, WORKER, "stop")
    assert status == 200 and body["done"] and body["program"]["state"] == "STOPPED", body
    assert host.status()[WORKER] == ("STOPPED", None)

    def gone():
        body = listing(host)
        mine = [p for p in body["processes"] if p["pid"] == before["pid"]]
        # It said it stopped (score 0), then the next sweep forgot it.
        return all(p["state"] in ("stopped", "dead") and p["control"] is None for p in mine) and body
    body = wait_until(gone, 30, "the stopped worker's heartbeat to stop")
    assert {p["name"]: (p["state"], p["beating"]) for p in body["programs"]}[WORKER] == ("STOPPED", False)
    page = http("GET", f"{host.url}/ops/workers")[2]
    assert re.search(r'<tr data-program="workers:workers_01" data-state="STOPPED">', page)
    assert 'data-action="start" data-program="workers:workers_01"' in page

    status, _, body = act(host, WORKER, "start")
    assert status == 200 and body["program"]["state"] == "RUNNING", body
    started = wait_until(lambda: {p["control"]: p for p in alive(listing(host))}.get(WORKER), 60,
                         "the started worker to beat")
    assert started["pid"] != before["pid"] and started["ppid"] == host.status()[WORKER][1]

    status, _, body = act(host, WORKER, "restart")
    assert status == 200 and body["program"]["state"] == "RUNNING", body
    restarted = wait_until(lambda: (p := {p["control"]: p for p in alive(listing(host))}.get(WORKER))
                           and p["ppid"] != started["ppid"] and p, 60, "the restarted worker to beat")
    assert restarted["ppid"] == host.status()[WORKER][1]

    # Stopping a stopped program or starting a running one changes nothing, and says so.
    status, _, body = act(host, WORKER, "start")
    assert status == 200 and body["program"]["pid"] == restarted["ppid"]

    entries = [e for e in audit_entries(host) if e["action"].endswith("worker program")]
    assert [(e["action"], e["program"], e["outcome"]) for e in reversed(entries)][-4:] == [
        ("stop worker program", WORKER, "STOPPED"), ("start worker program", WORKER, "RUNNING"),
        ("restart worker program", WORKER, "RUNNING"), ("start worker program", WORKER, "RUNNING")]
    assert all(e["user"] == "anonymous" and e["host"] for e in entries)
    # Jobs still run on the restarted worker's program.
    job_id = http("GET", f"{host.url}/comer/postre")[2]["job_id"]
    wait_until(lambda: http("GET", f"{host.url}/api/jobs/{job_id}")[2]["state"] == "done", 60, "a job after")


def test_actions_need_the_pages_token_and_origin_and_a_worker_program(host):
    headers = session(host)
    before = len(audit_entries(host))
    no_token = {k: v for k, v in headers.items() if k != "X-CSRF-Token"}
    status, _, body = act(host, WORKER, "stop", headers=no_token)
    assert status == 403 and body["error"] == "bad_csrf_token"
    status, _, body = act(host, WORKER, "stop", headers={**headers, "X-CSRF-Token": "0" * 40})
    assert status == 403 and body["error"] == "bad_csrf_token"
    status, _, body = act(host, WORKER, "stop", headers={**headers, "Origin": "http://evil.example"})
    assert status == 403 and body["error"] == "bad_csrf_origin"
    assert host.status()[WORKER][0] == "RUNNING" and len(audit_entries(host)) == before

    # Only the worker groups: not the web processes, not an unknown name.
    for name in ("web:web_0", "workers:workers_09", "nothing"):
        status, _, body = act(host, name, "stop", headers=headers)
        assert status == 404 and body["error"] == "no_such_program" and "workers:workers_00" in body["message"]
    assert host.status()["web:web_0"][0] == "RUNNING"
    status, headers_405, _ = act(host, WORKER, "stop", method="GET")
    assert status == 405 and headers_405["Allow"] == "POST"
    assert http("GET", f"{host.url}/ops/api/workers/{WORKER}/kill")[0] == 404


def test_the_cli_prints_the_same_list(host):
    result = subprocess.run([BIN / "foodapp", "-c", host.root / "production.ini", "workers"], capture_output=True,
                            text=True, timeout=60, env={"FOODAPP_REDIS_URL": host.redis.url, "PATH": str(BIN)})
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert sorted(p["control"] for p in alive(body)) == ["batch:batch_00", "workers:workers_00", "workers:workers_01"]
    assert all(p["rss_bytes"] and p["pid"] for p in alive(body)) and body["supervisor"]["reachable"]
    assert {p["name"] for p in body["programs"]} == {"workers:workers_00", "workers:workers_01", "batch:batch_00"}


@pytest.mark.parametrize("where", ["socket", "http"])
def test_a_supervisord_that_does_not_answer_is_a_503_that_says_so(host, tmp_path, monkeypatch, where):
    url = f"unix://{tmp_path}/supervisor.sock" if where == "socket" else f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("FOODAPP_REDIS_URL", host.redis.url)
    app = make_app(**{"supervisor.url": url})
    message = f"supervisord at {url} did not answer"
    body = app.get("/ops/api/workers").json
    # The processes are still listed, from Redis; nothing to control.
    assert len(alive(body)) == 3 and all(p["control"] is None for p in body["processes"]) and body["programs"] == []
    assert not body["supervisor"]["reachable"] and body["supervisor"]["error"].startswith(message)
    assert "is it running? the console can only control this host's processes" in body["supervisor"]["error"]
    page = app.get("/ops/workers")
    assert message in page.text and "data-action" not in page.text
    token = re.search(r'data-csrf-token="([^"]+)"', page.text).group(1)
    answer = app.post(f"/ops/api/workers/{WORKER}/restart", headers={"X-CSRF-Token": token}, status=503)
    assert answer.json["error"] == "supervisor_unavailable" and answer.json["message"].startswith(message)


def test_busy_and_done_count_each_thread_once():
    load = Load()
    load.finished(done=True)  # a message an earlier middleware skipped: never below zero
    assert load.sample()["busy"] == 0 and load.sample()["done"] == 0
    started, release = threading.Barrier(5), threading.Event()

    def job():
        load.started()
        load.started()  # a second before-hook call in the same thread counts once
        started.wait(10)
        release.wait(10)
        load.finished(done=True)

    threads = [threading.Thread(target=job) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait(10)
    assert load.sample()["busy"] == 4
    release.set()
    for thread in threads:
        thread.join(10)
    sample = load.sample()
    assert (sample["busy"], sample["done"]) == (0, 4) and sample["rss_bytes"] > 0
