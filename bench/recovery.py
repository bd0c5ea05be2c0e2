"""Recovery figures for `make bench`: how long foodapp takes to get going again after a kill -9.

- ``worker_kill(tmp) -> (foodapp_seconds, plain_seconds)``: a worker is killed (kill -9 of
  its process group) in the middle of a slow job and a fresh worker is started at once;
  the figure is the time from the kill to the job's second start (the slow actor records
  each start with time.time() in a Redis list). foodapp runs with production.ini's
  settings (heartbeat every 1 s, a worker silent for 10 s is dead: its jobs are swept back
  by any live worker). The baseline is plain Dramatiq tuned the same way: its RedisBroker
  gives a dead worker's jobs back once the worker's heartbeat is ``heartbeat_timeout`` old,
  in the "maintenance" of a fetch, which runs on ``maintenance_chance`` in a million fetches
  (default 60 s and 1,000); here heartbeat_timeout is production.ini's
  workers.heartbeat_timeout (10 s) and maintenance_chance a million (every fetch), so the
  figure compares the recovery designs, not a setting. It is capped at
  ``PLAIN_CAP_SECONDS`` and reported as the cap when it has not recovered by then.
- ``master_kill(tmp) -> (seconds, down_after_seconds)``: master, replica and three
  Sentinels (deploy/redis/sentinel.conf's down-after-milliseconds), one web process with
  production.ini's enqueue settings (a replica acknowledges each job, retried for 8 s),
  a new order every ORDER_INTERVAL s; the master is killed -9 and the figure is the time
  from the kill to the first 202 to an order sent after it.

Both start their own redis-servers on free ports of 127.0.0.1, and stop every process they
started whatever happens. `python -m bench.recovery` prints both, with the details.
"""
import json
import os
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import plaster  # noqa: E402

from tests.sentinel import MASTER_NAME, ReplicatedRedis  # noqa: E402
from tests.servers import BIN, Process, RedisServer, free_port, http, wait_until  # noqa: E402

from bench import recovery_actors  # noqa: E402

PRODUCTION_INI = ROOT / "production.ini"
SENTINEL_CONF = ROOT / "deploy" / "redis" / "sentinel.conf"

#: How long the slow job sleeps: far longer than anything measured here.
SLOW_SECONDS = 60
#: How long after the kill the plain Dramatiq baseline may take before we stop waiting.
PLAIN_CAP_SECONDS = float(os.environ.get("BENCH_RECOVERY_PLAIN_CAP", 60))
#: Plain Dramatiq's RedisBroker maintenance chance (in a million fetches): every fetch.
PLAIN_MAINTENANCE_CHANCE = 1_000_000
#: How long after the kill foodapp may take before the bench fails (its target is 15 s).
FOODAPP_DEADLINE_SECONDS = 60
#: master_kill: how long to wait for the first accepted enqueue after the kill.
FAILOVER_DEADLINE_SECONDS = 60
#: master_kill: a new order every ORDER_INTERVAL s whatever happens to the ones before
#: (0.55 s: the orders in flight through a failover, each retried up to 8 s, stay fewer
#: than the web process's 16 threads, and their retries, every 0.5 s, fall at different
#: moments); after WARM_UP_ORDERS are accepted the master is killed; at most MAX_ORDERS.
ORDER_INTERVAL = 0.55
WARM_UP_ORDERS = 5
WARM_UP_SECONDS = 30
IN_FLIGHT = 32
MAX_ORDERS = 1000


def production_ini(directory, name, port=None, **values):
    """A copy of production.ini for this machine.

    Changed: Redis is found through the environment (FOODAPP_REDIS_URL, or
    FOODAPP_REDIS_SENTINELS), not the seed's hosts; the dashboard login is off (it needs
    secrets from the environment and only guards /jobs and /ops, which are not measured);
    so is security.require_passwords, and redis.username is empty (the bench's private
    redis-servers have no password and no ACL users: their default user);
    waitress listens on 127.0.0.1:``port``; and ``values`` ("enqueue.replicas": "0").
    Every other setting is production's.
    """
    text = PRODUCTION_INI.read_text()
    for key, value in {"redis.sentinels": "", "redis.username": "", "dashboard.login_required": "false",
                        "security.require_passwords": "false", **values}.items():
        text, count = re.subn(rf"(?m)^{re.escape(key)} = .*$", f"{key} = {value}", text)
        assert count == 1, f"no setting {key} in production.ini"
    if port is not None:
        text, count = re.subn(r"(?m)^listen = .*$", f"listen = 127.0.0.1:{port}", text)
        assert count == 1
    path = Path(directory) / f"production-{name}.ini"
    path.write_text(text)
    return path


def plain_heartbeat_timeout_ms():
    """foodapp's production heartbeat timeout (production.ini workers.heartbeat_timeout), in ms."""
    match = re.search(r"(?m)^workers\.heartbeat_timeout = ([\d.]+)\s*$", PRODUCTION_INI.read_text())
    assert match, "no workers.heartbeat_timeout in production.ini"
    return int(float(match.group(1)) * 1000)


def sentinel_setting(name):
    """A ``sentinel <name> foodmaster <value>`` value of deploy/redis/sentinel.conf."""
    match = re.search(rf"(?m)^sentinel {re.escape(name)} \S+ (\d+)\s*$", SENTINEL_CONF.read_text())
    assert match, f"no sentinel {name} in {SENTINEL_CONF}"
    return int(match.group(1))


# -- worker kill -9 -> job running again ------------------------------------------------------

def _worker(directory, kind, redis_url, ini, n):
    env = {"PYTHONPATH": str(ROOT), "BENCH_REDIS_URL": redis_url, "FOODAPP_REDIS_URL": redis_url}
    if kind == "foodapp":
        modules = ["foodapp.worker", "bench.recovery_worker"]
        env["FOODAPP_INI"] = str(ini)
    else:
        modules = ["bench.plain_broker", "bench.recovery_worker"]
        env["BENCH_PLAIN_HEARTBEAT_TIMEOUT_MS"] = str(plain_heartbeat_timeout_ms())
        env["BENCH_PLAIN_MAINTENANCE_CHANCE"] = str(PLAIN_MAINTENANCE_CHANCE)
    return Process([BIN / "dramatiq", *modules, "--processes", "1", "--threads", "1",
                    "--queues", recovery_actors.QUEUE],
                   Path(directory) / f"worker-{kind}-{n}.log", env=env).start()


def _sender(kind, redis_url, ini):
    """A broker in this process to send the slow job: foodapp's (production settings), or plain."""
    if kind == "foodapp":
        from foodapp import broker as food
        from foodapp.settings import from_ini
        broker = food.configure(from_ini(plaster.get_settings(str(ini), "app:main"),
                                         environ={"FOODAPP_REDIS_URL": redis_url}))
    else:
        from dramatiq.brokers.redis import RedisBroker
        broker = RedisBroker(url=redis_url, middleware=[])
    return broker, recovery_actors.declare(broker)


def _kill_and_restart(tmp, kind, abort, details):
    """Seconds from kill -9 of the worker running the slow job to the job's next start."""
    cap = FOODAPP_DEADLINE_SECONDS if kind == "foodapp" else PLAIN_CAP_SECONDS
    with tempfile.TemporaryDirectory(dir=tmp, prefix=f"worker-kill-{kind}-") as here:
        server = RedisServer(here)
        processes, broker = [], None
        try:
            server.start()
            # One redis-server, no replica: the enqueue of the slow job waits for none.
            ini = production_ini(here, "worker", **{"enqueue.replicas": "0"}) if kind == "foodapp" else None
            client = server.client()
            broker, slow = _sender(kind, server.url, ini)
            processes.append(_worker(here, kind, server.url, ini, 1))
            slow.send(SLOW_SECONDS)
            wait_until(lambda: client.llen(recovery_actors.STARTS) >= 1 or abort.is_set(), 60,
                       f"the {kind} worker to start the slow job", interval=0.01)
            if abort.is_set():
                return None
            time.sleep(0.5)  # in the middle of the job, not at its first instruction

            killed_at = time.time()
            processes[0].kill()
            commands_before = _dispatches(client)
            processes.append(_worker(here, kind, server.url, ini, 2))
            deadline = time.monotonic() + cap
            while (client.llen(recovery_actors.STARTS) < 2 and time.monotonic() < deadline
                   and not abort.is_set() and processes[1].alive()):
                time.sleep(0.01)
            starts = [float(v) for v in client.lrange(recovery_actors.STARTS, 0, -1)]
            waited = time.time() - killed_at
            info = details.setdefault(kind, {})
            info["killed_at"], info["starts"] = killed_at, starts
            info["log"] = processes[1].output()[-4000:]
            info["dispatches_per_second"] = round((_dispatches(client) - commands_before) / waited, 2)
            if not processes[1].alive():
                raise AssertionError(f"the fresh {kind} worker exited:\n{processes[1].output()[-3000:]}")
            if len(starts) < 2:
                if kind == "foodapp" and not abort.is_set():
                    raise AssertionError(f"foodapp's job did not start again within {cap} s of the kill:\n"
                                         f"{processes[1].output()[-3000:]}")
                info["capped"] = True
                return cap
            info["capped"] = False
            return starts[1] - killed_at
        finally:
            for process in processes:
                process.kill()  # the slow job sleeps: no graceful stop to wait for
            if broker is not None:
                broker.client.connection_pool.disconnect()
            server.stop()


def _dispatches(client):
    """Scripts run by the server so far (Dramatiq's fetches, foodapp's heartbeats and sweeps)."""
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


def worker_kill(tmp, details=None):
    """(foodapp seconds, plain Dramatiq seconds) from a worker's kill -9 to its job running again.

    Both run at once (each on its own redis-server), so the whole takes about
    PLAIN_CAP_SECONDS at most. The plain figure is PLAIN_CAP_SECONDS when the job had not
    started again by then (``details["plain"]["capped"]``).
    """
    details = {} if details is None else details
    abort = threading.Event()

    def run(kind):
        try:
            return _kill_and_restart(tmp, kind, abort, details)
        except BaseException:
            abort.set()
            raise
    pool = ThreadPoolExecutor(2)
    try:
        food, plain = pool.submit(run, "foodapp"), pool.submit(run, "plain")
        return food.result(), plain.result()
    except BaseException:  # Ctrl-C too: the other measurement stops waiting and cleans up
        abort.set()
        raise
    finally:
        pool.shutdown(wait=True)


# -- master kill -9 -> first accepted enqueue -------------------------------------------------

_EVENT = re.compile(r"(\d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d\.\d{3}) . (\+[\w-]+) ")


def _sentinel_timeline(sentinels, since):
    """Each Sentinel event after ``since`` (time.time()), first seen by any Sentinel: seconds after it."""
    first = {}
    for sentinel in sentinels:
        for line in sentinel.output().splitlines():
            match = _EVENT.search(line)
            if not match:
                continue
            at = datetime.strptime(match.group(1), "%d %b %Y %H:%M:%S.%f").timestamp()
            name = match.group(2)
            if at >= since and (name not in first or at - since < first[name]):
                first[name] = round(at - since, 3)
    return dict(sorted(first.items(), key=lambda item: item[1]))


def master_kill(tmp, details=None):
    """(seconds from kill -9 of the master to the first 202, Sentinel's down-after in seconds).

    Orders arrive at a steady rate (one every ORDER_INTERVAL s, each on its own connection,
    whether or not the ones before were answered), as they would from many customers: an
    order sent during the failover is retried by the web process for enqueue.retry_seconds,
    and new ones keep coming. The figure is the time from the kill to the first 202 to an
    order sent after the kill.
    """
    details = {} if details is None else details
    down_after_ms = sentinel_setting("down-after-milliseconds")
    with tempfile.TemporaryDirectory(dir=tmp, prefix="master-kill-") as here:
        replicated = ReplicatedRedis(here, down_after_ms=down_after_ms)
        web = None
        pool = ThreadPoolExecutor(IN_FLIGHT)
        try:
            replicated.start()
            port = free_port()
            web = Process([BIN / "pserve", production_ini(here, "web", port)], Path(here) / "web.log",
                          env={"FOODAPP_REDIS_SENTINELS": replicated.sentinel_setting,
                               "FOODAPP_REDIS_MASTER_NAME": MASTER_NAME, "PYTHONPATH": str(ROOT)}).start()
            url = f"http://127.0.0.1:{port}"

            def ready():
                if not web.alive():
                    raise AssertionError(f"pserve exited:\n{web.output()[-3000:]}")
                try:
                    status, _, body = http("GET", f"{url}/readyz", timeout=2)
                except OSError:
                    return False
                return status == 200 and body["redis"]["master"] == f"127.0.0.1:{replicated.master.port}"
            wait_until(ready, 30, "the web app to be ready on the master")

            results, lock = [], threading.Lock()

            def send(i):
                sent = time.time()
                try:
                    status = http("GET", f"{url}/comer/plato{i}", timeout=30)[0]
                except OSError as error:
                    status = repr(error)
                with lock:
                    results.append((sent, time.time(), status))

            killed_at = None
            first = None
            next_at = time.monotonic()
            deadline = next_at + WARM_UP_SECONDS + FAILOVER_DEADLINE_SECONDS
            for i in range(MAX_ORDERS):
                if time.monotonic() > deadline:
                    raise AssertionError(f"no order was accepted within {FAILOVER_DEADLINE_SECONDS} s of the "
                                         f"master's kill:\n{web.output()[-3000:]}")
                time.sleep(max(0.0, next_at - time.monotonic()))
                pool.submit(send, i)
                next_at += ORDER_INTERVAL
                time.sleep(max(0.0, next_at - ORDER_INTERVAL / 2 - time.monotonic()))
                with lock:
                    # Half-way between two orders: the one before was answered long ago.
                    if killed_at is None and sum(1 for *_, status in results if status == 202) >= WARM_UP_ORDERS:
                        killed_at = time.time()
                        replicated.master.kill()
                    if killed_at is not None:
                        first = min((got for sent, got, status in results if status == 202 and sent > killed_at),
                                    default=None)
                if first is not None:
                    break
            else:
                raise AssertionError(f"{MAX_ORDERS} orders sent and none accepted after the kill")
            pool.shutdown(wait=True)  # the orders in flight: each answered within enqueue.retry_seconds
            with lock:
                answered = [(round(sent - killed_at, 3), round(got - killed_at, 3), status)
                            for sent, got, status in sorted(results) if got > killed_at]
            statuses = [status for *_, status in answered]
            details.update(
                killed_at=killed_at,
                orders=len(results),
                answered_after_kill={str(s): statuses.count(s) for s in set(statuses)},
                # (sent, answered) in seconds after the kill, and the status, of each order answered after it.
                answers=answered,
                sentinel_events=_sentinel_timeline(replicated.sentinels, killed_at),
                web_log=web.output()[-6000:],
            )
            return first - killed_at, down_after_ms / 1000
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            if web is not None:
                web.stop()
            replicated.stop()


def main():
    tmp = tempfile.mkdtemp(prefix="foodapp-recovery-")
    try:
        began = time.monotonic()
        found = {}
        food, plain = worker_kill(tmp, found)
        plain_text = f"> {plain:.0f} (not recovered by the cap)" if found["plain"]["capped"] else f"{plain:.2f}"
        print(f"worker kill -9 -> job running again: foodapp {food:.2f} s (target <= 15 s); "
              f"plain Dramatiq (heartbeat_timeout {plain_heartbeat_timeout_ms()} ms, maintenance on every fetch) "
              f"{plain_text} s")
        for kind in ("foodapp", "plain"):
            print(f"  {kind}: scripts run by Redis after the kill: {found[kind]['dispatches_per_second']}/s")
        swept = [line for line in found["foodapp"]["log"].splitlines() if "dead worker" in line]
        if swept:
            print(f"  foodapp sweep: {swept[0][:300]}")

        found = {}
        seconds, down_after = master_kill(tmp, found)
        print(f"master kill -9 -> first accepted enqueue: {seconds:.2f} s "
              f"(target <= down-after + 2 = {down_after + 2:.0f} s; down-after {down_after:.0f} s)")
        print(f"  orders sent: {found['orders']}, one every {ORDER_INTERVAL} s; "
              f"answers after the kill: {json.dumps(found['answered_after_kill'])}")
        print("  orders answered after the kill (sent, answered: s after the kill, status): "
              + ", ".join(f"({sent:.2f}, {got:.2f}, {status})" for sent, got, status in found["answers"]))
        print(f"  Sentinel events, s after the kill: {json.dumps(found['sentinel_events'])}")
        print(f"  in {time.monotonic() - began:.0f} s")
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
