"""The seed's production drill: hosts A, B, C in network namespaces, HAProxy in front.

Host A: web, Redis master, Sentinel 1, workers. Host B: web, Redis replica, Sentinel 2,
workers. Host C: Sentinel 3. HOST 0 (this namespace): HAProxy with deploy/haproxy's config.
Each test builds it all, loses a host (or cuts one off), and checks that every job that got
a 202 is done in the end, and that only a job in flight at the kill ran more than once.
"""
import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from foodapp.dev import redis_server_binary
from tests.hosts import set_ini
from tests.netns import Network, require_namespaces
from tests.proxy import FrontProxy, require_haproxy
from tests.runs import (assert_reruns_only_after_crashes, assert_reruns_only_at_kills, counts, merge, read_runs,
                        report)
from tests.sentinel import first_sync_at_once
from tests.servers import BIN, TESTING_INI, Process, http, wait_until

pytestmark = pytest.mark.drill

MASTER = "foodmaster"


class SeedProduction:

    def __init__(self, tmp_path, net, retry_seconds=8):
        self.tmp = Path(tmp_path)
        self.net = net
        self.addr = net.address
        self.sentinels = " ".join(f"{self.addr[h]}:26379" for h in "ABC")
        self.processes = {h: [] for h in "ABC"}
        self.proxy = None
        self.retry_seconds = retry_seconds
        # Sentinel's and Redis's timings as deploy/redis/*.conf sets them: the drill sees a
        # host die as production would (with down-after at 1 s it hid a 10 s wait).
        self.down_after_ms = 5000

    def _run(self, host, argv, name, env=None):
        process = Process([*self.net.exec_prefix(host), *argv], self.tmp / f"{host}-{name}.log", env=env).start()
        self.processes[host].append(process)
        return process

    def _redis(self, host, *extra):
        folder = self.tmp / f"redis-{host}"
        folder.mkdir()
        self._run(host, [redis_server_binary(), "--port", "6379", "--bind", self.addr[host], "--save", "",
                         "--appendonly", "no", "--dir", folder, "--protected-mode", "no", "--repl-timeout", "10",
                         "--repl-ping-replica-period", "2", *extra], "redis")

    def _sentinel(self, host):
        folder = self.tmp / f"sentinel-{host}"
        folder.mkdir()
        conf = folder / "sentinel.conf"
        conf.write_text(
            f"port 26379\nbind {self.addr[host]}\nprotected-mode no\ndir {folder}\n"
            f"sentinel monitor {MASTER} {self.addr['A']} 6379 2\n"
            f"sentinel down-after-milliseconds {MASTER} {self.down_after_ms}\n"
            f"sentinel failover-timeout {MASTER} 60000\n"
        )
        self._run(host, [redis_server_binary(), conf, "--sentinel"], "sentinel")

    def _app(self, host):
        ini = self.tmp / f"{host}.ini"
        text = re.sub(r"(?m)^listen = .*$", f"listen = {self.addr[host]}:8080", TESTING_INI.read_text())
        ini.write_text(set_ini(text, **{
            "enqueue.replicas": "1", "enqueue.retry_seconds": str(self.retry_seconds),
            "enqueue.replica_timeout_ms": "1000", "kitchen.preparation_seconds": "0.15",
            "redis.socket_timeout": "2",
        }))
        env = {"FOODAPP_REDIS_SENTINELS": self.sentinels, "FOODAPP_INI": str(ini)}
        self._run(host, [BIN / "pserve", ini], "web", env)
        # Four threads a worker process, as supervisor/production.conf runs them, and orders
        # of 0.15 s: the 400 orders come faster than the 16 threads take them, so every
        # thread has a job in hand when its host dies, and the host left alone drains the
        # rest in seconds.
        for i in range(2):
            self._run(host, [BIN / "dramatiq", "foodapp.worker", "--processes", "1", "--threads", "4",
                             "--worker-shutdown-timeout", "20000", "--queues", "comer", "beber", "batch"],
                      f"worker{i}", env)

    def _proxy(self):
        self.proxy = FrontProxy(self.tmp, {"hostA": f"{self.addr['A']}:8080", "hostB": f"{self.addr['B']}:8080"}).start()

    def start(self):
        self._redis("A")
        wait_until(lambda: self.info("A").get("role") == "master", 30, "A's redis-server to answer")
        with first_sync_at_once(self.redis("A")):
            self._redis("B", "--replicaof", self.addr["A"], "6379")
            wait_until(lambda: self.info("B").get("master_link_status") == "up", 30, "B's replica to sync")
        for host in "ABC":
            self._sentinel(host)
        wait_until(lambda: self._sentinels_agree(), 30, "the three sentinels to know each other", interval=0.2)
        self._app("A")
        self._app("B")
        for host in "AB":
            wait_until(lambda h=host: self._answers(f"{self.web(h)}/readyz"), 60, f"host {host}'s web app")
        # /readyz speaks for the web only: the drills lose a host once its workers run jobs too.
        wait_until(lambda: self.redis("A").zcard("dramatiq:__heartbeats__") == 4, 60,
                   "the four worker processes (two per host) to beat", interval=0.2)
        self._proxy()
        return self

    def _answers(self, url):
        try:
            return http("GET", url, timeout=2)[0] == 200
        except OSError:
            return False

    def _sentinels_agree(self):
        try:
            states = [self.sentinel(h).sentinel_master(MASTER) for h in "ABC"]
        except redis.RedisError:
            return False
        return all(s["num-other-sentinels"] == 2 and s["num-slaves"] == 1 for s in states)

    @property
    def proxy_url(self):
        return self.proxy.url

    def web(self, host):
        return f"http://{self.addr[host]}:8080"

    def redis(self, host):
        return redis.Redis(host=self.addr[host], port=6379, socket_timeout=2, socket_connect_timeout=2,
                           decode_responses=True)

    def sentinel(self, host):
        return redis.Redis(host=self.addr[host], port=26379, socket_timeout=2, socket_connect_timeout=2)

    def info(self, host):
        try:
            return self.redis(host).info("replication")
        except redis.RedisError:
            return {}

    def master_seen_by(self, host):
        try:
            return self.sentinel(host).sentinel_master(MASTER)["ip"]
        except redis.RedisError:
            return None

    def host_of(self, address):
        return next(h for h, a in self.addr.items() if a == address)

    def stop(self):
        if self.proxy:
            self.proxy.stop()
        for host in "ABC":
            for process in self.processes[host]:
                if process.alive():
                    process.kill()


class Load:
    """A bounded load of orders from HOST 0, in threads; records every answer.

    ``answers[i]`` is (status, body, sent, answered), the last two wall-clock seconds, so
    that a test can tell the answers given after a kill from those given before. A client
    waits longer than the proxy's tries of an order can take (deploy/haproxy: 3 + 1 + 1 +
    3 x 3 = 14 s).
    """

    def __init__(self, url, count, threads=6, timeout=20):
        self.url, self.count, self.threads, self.timeout = url, count, threads, timeout
        self.answers = {}
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _send(self, i):
        sent = time.time()
        try:
            status, _, body = http("GET", f"{self.url}/{'comer' if i % 2 else 'beber'}/plato{i}", timeout=self.timeout)
        except Exception as error:  # a connection cut mid-answer: no 202, so nothing promised
            status, body = None, f"{type(error).__name__}: {error}"
        with self.lock:
            self.answers[i] = (status, body, sent, time.time())

    def _run(self):
        with ThreadPoolExecutor(self.threads) as pool:
            list(pool.map(self._send, range(self.count)))

    def start(self):
        self._thread.start()
        return self

    def sent(self):
        with self.lock:
            return len(self.answers)

    def join(self, timeout=240):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the load did not finish in time"
        assert len(self.answers) == self.count
        return self

    def accepted(self):
        return {body["job_id"] for status, body, *_ in self.answers.values() if status == 202}

    def refused(self):
        return [(status, body) for status, body, *_ in self.answers.values() if status != 202]


@pytest.fixture
def seed(tmp_path):
    require_namespaces()
    require_haproxy()
    net = Network()
    production = SeedProduction(tmp_path, net)
    try:
        net.up()
        yield production.start()
    finally:
        production.stop()
        net.down()


def wait_recorded(client, job_ids, timeout=180):
    """The accepted jobs still missing from the ledger after a bounded wait for all of them.

    It returns instead of raising, so that the summary with the losses is printed first.
    """
    try:
        wait_until(lambda: job_ids <= set(client.hkeys("foodapp:ledger")), timeout,
                   f"all {len(job_ids)} accepted jobs to be in the ledger", interval=0.5)
    except AssertionError:
        pass
    return job_ids - set(client.hkeys("foodapp:ledger"))


def killed(action):
    """Do ``action`` (a kill) and return the (before, after) wall-clock times around it."""
    before = time.time()
    action()
    return before, time.time()


def assert_honest(load):
    """Every order not answered 202 was refused openly, or cut off in flight (nothing promised).

    A request in flight to the host that died ends without an answer (None) or with the
    proxy's 502/504; the proxy's own 503 while no backend is ready is JSON like foodapp's.
    """
    for status, body in load.refused():
        assert status in (None, 502, 503, 504), (status, body)
        if status == 503:
            assert body["error"] in ("redis_unavailable", "no_backend", "outcome_unknown"), body
            if body["error"] == "outcome_unknown":
                assert body["job_id"] and body["status_url"], body


def summary(name, load, extra=""):
    codes = {}
    for status, *_ in load.answers.values():
        codes[status] = codes.get(status, 0) + 1
    print(f"\n{name}: {len(load.answers)} orders through the proxy, answers {codes}{extra}")


def test_host_b_dies_a_stays_master_and_runs_what_b_held(seed):
    load = Load(seed.proxy_url, 400).start()

    def running_on_b():
        client, b_pids = seed.redis("A"), set(seed.net.pids("B"))
        held = []
        for key in client.scan_iter("foodapp:job:*", count=1000):
            status = {} if key.endswith(":events") else client.hgetall(key)
            if status.get("state") == "running" and int(status.get("worker_pid", 0)) in b_pids:
                held.append(status["job_id"])
        return len(held) >= 2 and held
    # So that B dies with jobs in hand.
    wait_until(running_on_b, 60, "B's workers to hold jobs", interval=0.2)

    kill = killed(lambda: seed.net.kill_all("B"))
    seed.net.cut("B")
    load.join()

    assert seed.master_seen_by("A") == seed.addr["A"]
    client = seed.redis("A")
    accepted = load.accepted()
    lost = wait_recorded(client, accepted)
    runs = read_runs(client, accepted)
    # The sweep counts a crash for each job a dead worker was running, before giving it back.
    crashed = {job_id for job_id, run in runs.items() if run.crashes}
    summary("host B dies", load, f", lost: {len(lost)} {sorted(lost)[:10]}, {report(runs)}, "
                                 f"B was running {len(crashed)} when it died")
    assert not lost
    # No client sees the host die: A takes the orders, holding them until the Sentinels
    # judge B's replica down, and stays ready meanwhile (the only host left).
    assert not load.refused(), f"client-visible errors when host B died: {load.refused()[:5]}"
    assert crashed, "the sweep counted no job B was running when it died"
    # B's running jobs ran once on B and once more on A; everything else exactly once.
    assert counts(runs) == {job_id: 2 if job_id in crashed else 1 for job_id in accepted}, \
        {job_id: (run.starts, run.crashes) for job_id, run in runs.items() if len(run) != 1 + (job_id in crashed)}
    assert_reruns_only_after_crashes(runs)
    assert_reruns_only_at_kills(runs, [kill])
    assert_honest(load)


def test_host_a_dies_b_is_promoted_and_takes_over(seed):
    load = Load(seed.proxy_url, 400).start()
    wait_until(lambda: load.sent() >= 100, 60, "100 orders to be answered")

    def die():
        seed.net.kill_all("A")
        seed.net.cut("A")
    kill = killed(die)

    wait_until(lambda: seed.master_seen_by("B") == seed.addr["B"] and seed.master_seen_by("C") == seed.addr["B"],
               60, "the sentinels on B and C to promote B's replica", interval=0.2)
    print(f"\nhost A dies: B promoted {time.time() - kill[1]:.1f} s after the kill")
    load.join()

    # B takes the traffic: once the proxy finds it ready again, every order is accepted.
    wait_until(lambda: seed._answers(f"{seed.proxy_url}/readyz"), 60, "the proxy to route to B again", interval=0.2)
    later = Load(seed.proxy_url, 40).start().join()

    client = seed.redis("B")
    accepted = load.accepted() | later.accepted()
    # Orders in flight through the failover: B's web held them (enqueue.retry_seconds) until
    # B's Redis was promoted, then answered 202.
    through = [body["job_id"] for status, body, _, answered in load.answers.values()
               if status == 202 and answered > kill[1]]
    lost = wait_recorded(client, accepted)
    runs = read_runs(client, accepted)
    # How long the orders sent while A was dying waited for their 202: printed, not asserted.
    waits = [answered - sent for status, _, sent, answered in load.answers.values() if sent >= kill[0] - 1]
    summary("host A dies", load, f", lost: {len(lost)} {sorted(lost)[:10]}, {report(runs)}, "
                                 f"accepted after the kill: {len(through)} in flight, {len(later.accepted())} "
                                 f"of {later.count} sent once B took over; longest wait for an answer of an order "
                                 f"sent from 1 s before the kill: {max(waits, default=0):.1f} s "
                                 f"(down-after {seed.down_after_ms / 1000:g} s + about 2 s)")
    assert not lost
    # No client sees the host die: the proxy retries what A took but never answered (an
    # answer leaves a web process whole or not at all: tests/test_one_send.py), and B stays
    # ready through the failover, holding each order until the new master takes it.
    assert not load.refused(), f"client-visible errors when host A died: {load.refused()[:5]}"
    assert through, "no order was answered 202 after the kill: none got through the failover"
    assert len(later.accepted()) == later.count, later.refused()[:5]
    assert_reruns_only_at_kills(runs, [kill])
    assert counts({job_id: runs[job_id] for job_id in later.accepted()}) == dict.fromkeys(later.accepted(), 1)
    assert_honest(load)


def test_a_partitioned_master_acknowledges_nothing_and_nothing_is_lost_after_healing(seed):
    before = Load(seed.proxy_url, 60).start().join()
    # Which host each run was on: a start names its worker "host:pid", and both hosts are "vm".
    pids = {host: sorted(seed.net.pids(host)) for host in "AB"}
    # The partition is the drill's kill: it takes the master away from B's workers.
    kill = killed(lambda: seed.net.partition("A", ["B", "C"]))

    # Clients that still reach A: A's Redis is cut off from its replica, so no order may get
    # a 202 there (each one is retried enqueue.retry_seconds, then refused).
    on_a = Load(seed.web("A"), 6, threads=6, timeout=60).start()
    wait_until(lambda: seed.master_seen_by("B") == seed.addr["B"], 60, "B's replica to be promoted", interval=0.2)
    on_b = Load(seed.web("B"), 40).start().join()
    on_a.join()
    assert not on_a.accepted(), "host A acknowledged orders it could not replicate"
    assert {status for status, _ in on_a.refused()} == {503}, on_a.refused()
    # A's /readyz says so too, and the front proxy stops sending it traffic.
    wait_until(lambda: http("GET", f"{seed.web('A')}/readyz", timeout=5)[0] == 503, 30, "A's /readyz to say not ready")

    # What A's workers ran on the cut-off master: lost from the timelines when A rejoins.
    # A job really ran there only if its actor wrote its ledger entry there after the cut: a
    # `started` event alone may be a start no replica confirmed, which a worker never runs.
    old_master = seed.redis("A")
    ran_on_a = {job_id for job_id, entry in old_master.hgetall("foodapp:ledger").items()
                if job_id in before.accepted() and float(json.loads(entry)["at"]) >= kill[0]}
    on_old_master = read_runs(old_master, ran_on_a)
    seed.net.heal("A", ["B", "C"])
    wait_until(lambda: seed.info("A").get("role") == "slave" and seed.info("A").get("master_host") == seed.addr["B"],
               90, "A's old master to come back as B's replica", interval=0.5)

    accepted = before.accepted() | on_b.accepted()
    assert on_b.accepted(), "B accepted no order after its promotion"
    client = seed.redis("B")
    lost = wait_recorded(client, accepted)
    runs = merge(read_runs(client, accepted), on_old_master)
    print(f"\npartition: A refused {len(on_a.refused())} of {len(on_a.answers)} orders; "
          f"B accepted {len(on_b.accepted())}; lost after healing: {len(lost)} {sorted(lost)[:10]}; {report(runs)}; "
          f"pids on A {pids['A']}, on B {pids['B']}")
    assert not lost
    assert_reruns_only_at_kills(runs, [kill])
