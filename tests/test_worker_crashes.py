"""Worker crash drills: kill -9 of a Dramatiq worker process, or of its program's top process.

In `make run` (supervisor/development.conf) and in the production layout
(supervisor/production.conf). After each kill: a new order is done by a process of that very
program, supervisorctl shows the program RUNNING with a new pid, and no worker process of
the old one goes on running outside supervisord's control (it would take jobs that
`supervisorctl stop` cannot stop).

Only one program consumes the comer queue during a drill, so an order done on comer says
that program runs jobs, and its ``worker_pid`` says which process ran it.

Then the same two behaviours of foodapp/parent.py on a bare `dramatiq foodapp.worker`, with
a job in flight: a worker process whose main is killed finishes its job, then exits; and a
reload's signals (several per save, then Ctrl-C) stop a worker process once, not cutting its
job short.
"""
import os
import re
import signal
import time

import pytest

from tests.hosts import Host, parent_pid, set_ini
from tests.servers import BIN, TESTING_INI, Process, Web, free_port, http, processes_with, wait_until
from tests.test_make_run import dev_project, supervisorctl

pytestmark = pytest.mark.drill

PROGRAM = "workers:workers_00"


def descends_from(pid, ancestor):
    """Whether ``ancestor`` is ``pid`` or one of its ancestors (bounded walk up /proc)."""
    for _ in range(64):
        if pid == ancestor:
            return True
        if pid is None or pid <= 1:
            return False
        pid = parent_pid(pid)
    return False


def parse_status(text):
    """{program: (state, pid or None)} from `supervisorctl status` output."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"^(\S+)\s+(\S+)(?:\s+pid (\d+))?", line)
        if match:
            found[match.group(1)] = (match.group(2), match.group(3) and int(match.group(3)))
    return found


class DevStack:
    """`make run` on private ports: foodapp-dev with a copied development.ini and conf."""

    def __init__(self, tmp_path):
        self.http_port, redis_port = free_port(), free_port()
        self.project = dev_project(tmp_path, self.http_port, redis_port)
        self.ini = self.project / "development.ini"
        self.marker = str(self.ini)  # in FOODAPP_INI, so in every process supervisord starts
        self.run = Process(
            [BIN / "foodapp-dev", self.ini, "--supervisor-conf", self.project / "supervisor" / "development.conf"],
            tmp_path / "make-run.log",
        )

    @property
    def url(self):
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def supervisord_pid(self):
        return self.run.pid  # foodapp-dev execs supervisord

    def start(self):
        self.run.start()
        names = ("web", "workers:workers_00", "workers:workers_01", "batch:batch_00")

        def ready():
            assert self.run.alive(), self.run.output()
            status = self.status()
            return all(status.get(name, ("",))[0] == "RUNNING" for name in names) and web_answers(self.url)
        wait_until(ready, 90, "make run's programs RUNNING and its web app answering", interval=0.2)
        return self

    def status(self):
        return parse_status(supervisorctl(self.project, "status"))

    def ctl(self, *args):
        return supervisorctl(self.project, *args)

    def log(self, program):
        path = self.project / "var" / "log" / f"{program.split(':')[-1]}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self):
        if self.run.proc is not None and self.run.alive():
            self.run.signal_group(signal.SIGINT)  # Ctrl-C
            try:
                self.run.proc.wait(90)
            except Exception:
                pass
        for pid in processes_with(self.marker):  # what outlived it, orphans included
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class ProdStack:
    """A production host (tests.hosts.Host): one queue worker, one batch worker."""

    def __init__(self, tmp_path, redis_url):
        self.host = Host(tmp_path, "hostA", redis_url, workers=1, batch=1)
        self.marker = str(self.host.root)

    url = property(lambda self: self.host.url)
    supervisord_pid = property(lambda self: self.host.process.pid)

    def start(self):
        self.host.start()
        return self

    def status(self):
        return self.host.status()

    def ctl(self, *args):
        return self.host.ctl(*args)

    def log(self, program):
        return self.host.log(program)

    def stop(self):
        self.host.stop()


def web_answers(url):
    try:
        return http("GET", url + "/healthz", timeout=1)[0] == 200
    except OSError:
        return False


def answer(method, url):
    """(status, headers, body), or None while the web app does not answer.

    In development the web app reloads on a saved change (another engineer's, say), and
    refuses connections for a moment.
    """
    try:
        return http(method, url, timeout=5)
    except OSError:
        return None


def order_done(stack, food):
    """Order ``food`` on comer and wait until it is done; the job's status record."""
    code, _, body = wait_until(lambda: answer("POST", f"{stack.url}/comer/{food}"), 60, f"an answer to {food}")
    assert code == 202, body

    def done():
        job = (answer("GET", body["status_url"]) or (None, None, {}))[2]
        return job.get("state") == "done" and job
    try:
        return wait_until(done, 120, f"the order {food} to be done", interval=0.1)
    except AssertionError as error:
        raise AssertionError(f"{error}; supervisorctl status:\n{stack.ctl('status')}") from None


def outside_supervisord(stack):
    """PIDs of the stack's processes that are not supervisord's descendants (orphans)."""
    return [pid for pid in processes_with(stack.marker) if not descends_from(pid, stack.supervisord_pid)]


def drill(stack, target):
    """kill -9 ``target`` ("worker process" or "top process") of PROGRAM, check it recovers."""
    for attempt in range(5):
        state, top = stack.status()[PROGRAM]
        assert state == "RUNNING"
        worker = order_done(stack, "pimiento")["worker_pid"]
        assert descends_from(worker, top) and worker != top, (worker, top)
        victim = worker if target == "worker process" else top
        try:
            os.kill(victim, signal.SIGKILL)
            break
        except ProcessLookupError:
            # In development a saved change to the code (another engineer's, say) reloads
            # the worker processes: order again to learn the new one.
            continue
    else:
        raise AssertionError(f"the {target} kept changing before it could be killed")
    killed_at = time.monotonic()
    log_before = len(stack.log(PROGRAM))
    seen = []  # (seconds after the kill, state, pid): printed, and shown on a failure

    def reloaded():
        # In development a save (another engineer's, say) in the second after a worker
        # process died turns the main's exit into a reload: same pid, new worker process.
        return "Detected changes to" in stack.log(PROGRAM)[log_before:]

    def recovered():
        state, pid = stack.status().get(PROGRAM, ("", None))
        if not seen or seen[-1][1:] != (state, pid):
            seen.append((round(time.monotonic() - killed_at, 2), state, pid))
        new_pid = pid != top or (target == "worker process" and reloaded())
        return state == "RUNNING" and new_pid and not outside_supervisord(stack) and pid
    try:
        new_top = wait_until(recovered, 90, f"{PROGRAM} RUNNING with a new pid and no orphan", interval=0.2)
    except AssertionError as error:
        raise AssertionError(
            f"{error}\n{PROGRAM} was {seen}; outside supervisord: "
            f"{[(pid, cmdline(pid)) for pid in outside_supervisord(stack)]}\n"
            f"its log ends:\n{stack.log(PROGRAM)[-3000:]}"
        ) from None

    after = order_done(stack, "pepino")
    recovery = time.monotonic() - killed_at
    state, running = stack.status()[PROGRAM]
    # Never RUNNING without running jobs: the RUNNING pid is the one whose process ran it.
    assert state == "RUNNING" and running == new_top, stack.ctl("status")
    assert descends_from(after["worker_pid"], new_top), (after, new_top, stack.ctl("status"))
    assert after["worker_pid"] != worker
    assert not outside_supervisord(stack)
    how = "reloaded by a save, same pid" if new_top == top else "restarted by supervisord"
    print(f"\n{type(stack).__name__}: kill -9 of the {target} ({victim}): {PROGRAM} went {seen} ({how}); "
          f"an order was done by its new worker process {recovery:.1f} s after the kill")


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return "?"


@pytest.mark.parametrize("target", ["worker process", "top process"])
def test_make_run_brings_a_killed_worker_back(tmp_path, monkeypatch, target):
    monkeypatch.delenv("FOODAPP_REDIS_URL", raising=False)
    stack = DevStack(tmp_path)
    try:
        stack.start()
        # Only workers_00 consumes comer during the drill.
        stack.ctl("stop", "workers:workers_01")
        drill(stack, target)
    finally:
        stack.stop()
    wait_until(lambda: not processes_with(stack.marker), 30, "every process of `make run` to exit")


@pytest.mark.parametrize("target", ["worker process", "top process"])
def test_production_brings_a_killed_worker_back(tmp_path, redis_server, target):
    stack = ProdStack(tmp_path, redis_server.url)
    try:
        stack.start()
        drill(stack, target)
        # The restarted program stops gracefully as a whole, leaving nothing behind.
        stack.ctl("stop", "workers:*")
        wait_until(lambda: stack.status()[PROGRAM][0] == "STOPPED", 90, "workers to stop")
        assert not [pid for pid in processes_with(stack.marker) if "workers_00" in cmdline(pid)]
    finally:
        stack.stop()


def slow_ini(tmp_path, seconds=3):
    """testing.ini whose orders take ``seconds``: long enough to act while one runs."""
    ini = tmp_path / "slow.ini"
    ini.write_text(set_ini(TESTING_INI.read_text(), **{"kitchen.preparation_seconds": seconds}))
    return ini


def bare_worker(tmp_path, redis_url, ini, *options):
    return Process(
        [BIN / "dramatiq", "foodapp.worker", "--processes", "1", "--threads", "1",
         "--worker-shutdown-timeout", "20000", *options, "--queues", "comer"],
        tmp_path / "worker.log", env={"FOODAPP_INI": str(ini), "FOODAPP_REDIS_URL": redis_url},
    )


def running_order(web, food):
    """Order ``food`` and wait until a worker runs it; (status URL, job status)."""
    code, _, body = http("POST", f"{web.url}/comer/{food}")
    assert code == 202, body
    job = wait_until(lambda: (j := http("GET", body["status_url"])[2]).get("state") == "running" and j,
                     60, f"the order {food} to start")
    return body["status_url"], job


def starts(job):
    return sum(1 for event in job["events"] if event.get("event") == "started")


def alive(pid):
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_a_worker_process_whose_main_is_killed_finishes_its_job_and_exits(tmp_path, redis_server):
    ini = slow_ini(tmp_path)
    web = Web(tmp_path, redis_server.url, ini=ini)
    worker = bare_worker(tmp_path, redis_server.url, ini)
    orphan = None
    try:
        web.start()
        worker.start()
        status_url, job = running_order(web, "salmon")
        orphan = job["worker_pid"]
        assert parent_pid(orphan) == worker.pid

        os.kill(worker.pid, signal.SIGKILL)  # Dramatiq's main process
        worker.proc.wait(10)
        killed_at = time.monotonic()
        wait_until(lambda: not alive(orphan), 60, "the orphaned worker process to exit")
        gone = time.monotonic() - killed_at
        job = http("GET", status_url)[2]
        # It finished the job it held before exiting: done, and run once.
        assert job["state"] == "done", job
        assert starts(job) == 1, job["events"]
        print(f"\nworker process {orphan} exited {gone:.1f} s after its main's kill -9, its job done")
    finally:
        worker.stop()
        web.stop()
        if orphan and alive(orphan):
            os.kill(orphan, signal.SIGKILL)


def test_a_reloads_signals_and_ctrl_c_stop_a_worker_process_once(tmp_path, redis_server):
    ini = slow_ini(tmp_path)
    code = tmp_path / "code"
    code.mkdir()
    module = code / "module.py"
    module.write_text("x = 0\n")
    web = Web(tmp_path, redis_server.url, ini=ini)
    worker = bare_worker(tmp_path, redis_server.url, ini, "--watch", code, "-i", "**/*.py")
    try:
        web.start()
        worker.start()
        wait_until(lambda: "is booting up" in worker.output(), 60, "the worker to boot")
        status_url, job = running_order(web, "tomate")
        assert job["worker_pid"] != worker.pid

        # Three saves, each a SIGHUP to the worker process (os.utime: one file event each).
        for _ in range(3):
            hups = worker.output().count("Sending signal 'SIGHUP'")
            os.utime(module)
            wait_until(lambda: worker.output().count("Sending signal 'SIGHUP'") > hups
                       or "Killing worker process" in worker.output(), 30, "the main process to pass a SIGHUP on")
            assert "Killing worker process" not in worker.output(), worker.output()
        # Then Ctrl-C while it is still finishing the job: the main passes a TERM on.
        worker.signal_group(signal.SIGINT)
        worker.proc.wait(60)

        log = worker.output()
        assert "Killing worker process" not in log, log
        job = http("GET", status_url)[2]
        assert job["state"] == "done", job
        assert starts(job) == 1, job["events"]
        assert worker.proc.returncode == 0, log
    finally:
        worker.stop()
        web.stop()


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except OSError:
        return []


@pytest.mark.parametrize("target", ["server process", "top process"])
def test_make_run_brings_a_killed_web_process_back(tmp_path, monkeypatch, target):
    """kill -9 of the waitress process under the reloader (what the OOM killer does), or of
    the reloader itself: the web app answers again, and supervisorctl never says RUNNING
    for a web program that serves nothing (the reloader used to wait for a file change)."""
    monkeypatch.delenv("FOODAPP_REDIS_URL", raising=False)
    stack = DevStack(tmp_path)
    try:
        stack.start()
        state, top = stack.status()["web"]
        assert state == "RUNNING"
        [server] = wait_until(lambda: children(top), 30, "the web program's server process")
        os.kill(server if target == "server process" else top, signal.SIGKILL)
        killed_at = time.monotonic()
        wait_until(lambda: not web_answers(stack.url), 30, "the killed web app to stop answering", interval=0.05)
        wait_until(lambda: web_answers(stack.url), 60, f"the web app to answer again after kill -9 of its {target}\n"
                   f"web's log ends:\n{stack.log('web')[-3000:]}", interval=0.1)
        back = time.monotonic() - killed_at
        code, _, body = http("POST", f"{stack.url}/comer/pepino", timeout=5)
        assert code == 202, body
        # Restarted by its reloader (same pid) or, its reloader killed, by supervisord (a
        # new pid, STARTING for startsecs): RUNNING, and no process of it left orphaned.
        wait_until(lambda: stack.status()["web"][0] == "RUNNING", 30, f"web RUNNING\n{stack.ctl('status')}")
        assert not outside_supervisord(stack), [(pid, cmdline(pid)) for pid in outside_supervisord(stack)]
        assert web_answers(stack.url)
        print(f"\nmake run: kill -9 of the web {target}: answering again {back:.1f} s later")
    finally:
        stack.stop()
    wait_until(lambda: not processes_with(stack.marker), 30, "every process of `make run` to exit")
