"""Deploying a new version drops nothing and runs nothing twice: a rolling restart of the web
behind the front proxy, workers restarted under load, and systemd units that verify."""
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from foodapp.rolling import HAProxy
from tests.hosts import Host
from tests.proxy import FrontProxy
from tests.runs import counts, read_runs, report, rerun
from tests.servers import BIN, ROOT, http, wait_until

pytestmark = pytest.mark.drill


class Traffic:
    """Orders in a few threads until stopped (at most ``limit`` of them), timing each."""

    def __init__(self, url, limit=20000, threads=4):
        self.url, self.limit, self.threads = url, limit, threads
        self.answers = []  # (started, seconds, status, body)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.count = 0

    def _next(self):
        with self.lock:
            if self.stopped.is_set() or self.count >= self.limit:
                return None
            self.count += 1
            return self.count

    def _loop(self):
        while (i := self._next()) is not None:
            started = time.monotonic()
            try:
                status, _, body = http("GET", f"{self.url}/comer/plato{i}", timeout=30)
            except Exception as error:  # counted as a failed request below
                status, body = None, f"{type(error).__name__}: {error}"
            with self.lock:
                self.answers.append((started, time.monotonic() - started, status, body))

    def _run(self):
        with ThreadPoolExecutor(self.threads) as pool:
            for _ in range(self.threads):
                pool.submit(self._loop)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopped.set()
        self.thread.join(60)
        assert not self.thread.is_alive()
        return self


def wait_ledger(client, accepted, timeout=120):
    """The accepted jobs missing from the ledger after a bounded wait for all of them (so that
    the summary is printed before the assert); an entry for anything else fails here."""
    try:
        wait_until(lambda: accepted <= set(client.hkeys("foodapp:ledger")), timeout, "every job to be done",
                   interval=0.5)
    except AssertionError:
        pass
    ledger = set(client.hkeys("foodapp:ledger"))
    assert ledger <= accepted, f"ledger entries for jobs never accepted: {sorted(ledger - accepted)[:10]}"
    return accepted - ledger


def p99(seconds):
    ordered = sorted(seconds)
    return ordered[int(len(ordered) * 0.99) - 1] if ordered else 0.0


def test_a_rolling_restart_of_the_web_behind_the_proxy_drops_no_request(tmp_path, redis_server):
    # Orders take no preparation time: what is tested is the web's restart, and the jobs of
    # the thousands of orders sent meanwhile are then run (and counted) in seconds.
    host = Host(tmp_path, "a", redis_server.url, workers=2, settings={"kitchen.preparation_seconds": "0"})
    socket_path = tmp_path / "haproxy.sock"
    proxy = FrontProxy(tmp_path, {f"hostA_{i}": f"127.0.0.1:{port}" for i, port in enumerate(host.web_ports)},
                       admin_socket=socket_path)
    haproxy = HAProxy(str(socket_path))
    try:
        host.start()
        proxy.start()
        wait_until(lambda: all(haproxy.server_stat("waitress", f"hostA_{i}")["status"] == "UP" for i in (0, 1)),
                   30, "both web processes to be up in HAProxy")
        pids_before = {name: pid for name, (_, pid) in host.status().items() if name.startswith("web:")}
        traffic = Traffic(proxy.url).start()
        wait_until(lambda: len(traffic.answers) >= 50, 30, "traffic to flow")
        started = time.monotonic()
        rolling = subprocess.run(
            [BIN / "foodapp-rolling-restart", "--haproxy", socket_path, "-c", host.conf,
             *[arg for i, port in enumerate(host.web_ports)
               for arg in ("--server", f"hostA_{i}=web:web_{i}=http://127.0.0.1:{port}")]],
            capture_output=True, text=True, timeout=300,
        )
        finished = time.monotonic()
        wait_until(lambda: any(begun > finished for begun, *_ in traffic.answers), 30, "traffic after the restart")
        traffic.stop()
        assert rolling.returncode == 0, rolling.stdout + rolling.stderr
        assert "hostA_1: back in service" in rolling.stdout

        pids_after = {name: pid for name, (_, pid) in host.status().items() if name.startswith("web:")}
        assert all(pids_after[name] != pid for name, pid in pids_before.items()), "a web process was not restarted"
        failed = [(status, body) for _, _, status, body in traffic.answers if status != 202]
        during = [seconds for begun, seconds, _, _ in traffic.answers if started <= begun <= finished]
        accepted = {body["job_id"] for _, _, status, body in traffic.answers if status == 202}
        client = redis_server.client(decode_responses=True)
        lost = wait_ledger(client, accepted)
        runs = read_runs(client, accepted)
        print(f"\nrolling restart: {len(traffic.answers)} requests, {len(during)} during the restart, "
              f"failed: {len(failed)}, p99 during the restart: {p99(during) * 1000:.0f} ms; "
              f"{len(accepted)} jobs, lost {len(lost)}, {report(runs)}")
        assert not failed, failed[:3]
        assert during, "no request was sent during the restart"
        assert not lost, sorted(lost)[:10]
        # Only the web restarts: no worker dies, so every job starts exactly once.
        assert counts(runs) == dict.fromkeys(accepted, 1), rerun(runs)
    finally:
        proxy.stop()
        host.stop()


def test_restarting_the_workers_under_load_loses_nothing_and_runs_nothing_twice(tmp_path, redis_server):
    # 0.15 s an order: the four worker threads always have jobs in hand (300 orders are
    # queued within a second or two), and the backlog outlasts both restarts.
    host = Host(tmp_path, "a", redis_server.url, workers=2, threads=2,
                settings={"kitchen.preparation_seconds": "0.15"})
    try:
        host.start()
        traffic = Traffic(host.url, limit=300).start()
        client = redis_server.client(decode_responses=True)
        restarts = []
        for _ in range(2):
            # New jobs done since the last restart: the workers are busy when they restart,
            # this time and not only the first.
            done_so_far = client.hlen("foodapp:ledger")
            wait_until(lambda: client.hlen("foodapp:ledger") >= done_so_far + 5, 30,
                       "five more jobs to be done since the last restart")
            restarts.append(time.time())
            result = host.ctl("restart", "workers:*")
            assert result.count("started") == 2, result
        traffic.stop()
        accepted = {body["job_id"] for _, _, status, body in traffic.answers if status == 202}
        assert len(accepted) == len(traffic.answers), [a for a in traffic.answers if a[2] != 202][:3]
        lost = wait_ledger(client, accepted)
        runs = read_runs(client, accepted)
        in_flight = [sum(1 for run in runs.values() if run.starts and run.starts[0] < at and not
                         any(done < at for done in run.done)) for at in restarts]
        print(f"\nworker restarts under load: {len(accepted)} jobs, lost {len(lost)}, {report(runs)}, "
              f"running at each restart: {in_flight}")
        assert not lost, sorted(lost)[:10]
        assert all(in_flight), "a restart found no job running: it tested nothing"
        # A graceful restart finishes or hands back what it holds: nothing starts twice.
        assert counts(runs) == dict.fromkeys(accepted, 1), rerun(runs)
    finally:
        host.stop()


def test_the_systemd_unit_verifies(tmp_path):
    if subprocess.run(["which", "systemd-analyze"], capture_output=True).returncode != 0:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    unit = tmp_path / "foodapp.service"
    # Where the checkout is here, instead of /srv/foodapp.
    unit.write_text((ROOT / "deploy" / "systemd" / "foodapp.service").read_text().replace("/srv/foodapp", str(ROOT)))
    result = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
