"""Deploying a new version drops nothing: a rolling restart of the web behind the front
proxy, workers restarted under load, and systemd units that verify."""
import json
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from foodapp.rolling import HAProxy
from tests.hosts import Host
from tests.proxy import FrontProxy
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


def p99(seconds):
    ordered = sorted(seconds)
    return ordered[int(len(ordered) * 0.99) - 1] if ordered else 0.0


def test_a_rolling_restart_of_the_web_behind_the_proxy_drops_no_request(tmp_path, redis_server):
    host = Host(tmp_path, "a", redis_server.url, workers=2).start()
    socket_path = tmp_path / "haproxy.sock"
    proxy = FrontProxy(tmp_path, {f"hostA_{i}": f"127.0.0.1:{port}" for i, port in enumerate(host.web_ports)},
                       admin_socket=socket_path).start()
    haproxy = HAProxy(str(socket_path))
    try:
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
        print(f"\nrolling restart: {len(traffic.answers)} requests, {len(during)} during the restart, "
              f"failed: {len(failed)}, p99 during the restart: {p99(during) * 1000:.0f} ms")
        assert not failed, failed[:3]
        accepted = {body["job_id"] for _, _, status, body in traffic.answers if status == 202}
        client = redis_server.client(decode_responses=True)
        wait_until(lambda: accepted <= set(client.hkeys("foodapp:ledger")), 120, "every job to be done")
    finally:
        proxy.stop()
        host.stop()


def test_restarting_the_workers_under_load_loses_nothing_and_runs_nothing_twice(tmp_path, redis_server):
    host = Host(tmp_path, "a", redis_server.url, workers=2, threads=2,
                settings={"kitchen.preparation_seconds": "0.3"}).start()
    try:
        traffic = Traffic(host.url, limit=300).start()
        for _ in range(2):
            wait_until(lambda: redis_server.client().hlen("foodapp:ledger") >= 5, 30, "jobs to be running")
            result = host.ctl("restart", "workers:*")
            assert result.count("started") == 2, result
        traffic.stop()
        accepted = [body["job_id"] for _, _, status, body in traffic.answers if status == 202]
        assert len(accepted) == len(traffic.answers)
        client = redis_server.client(decode_responses=True)
        wait_until(lambda: set(accepted) <= set(client.hkeys("foodapp:ledger")), 120, "every job to be done")
        for job_id in accepted:
            events = [json.loads(e)["event"] for e in client.lrange(f"foodapp:job:{job_id}:events", 0, -1)]
            assert events.count("started") == 1, (job_id, events)
        print(f"\nworker restarts under load: {len(accepted)} jobs, lost 0, none started twice")
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
