"""`make bench`: foodapp against baselines measured in the same run, as ratios.

Every figure runs foodapp and its baseline back to back, on private redis-servers started
here, the same cores, the same settings; all traffic goes to 127.0.0.1. The table is
printed, written to bench/results/latest.json with the machine's description, and into
docs/bench.md. Bounded: each measurement has a count and a deadline.
"""
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import BIN, TESTING_INI, Process, RedisServer, free_port, http, wait_until  # noqa: E402

DRAIN_JOBS = int(os.environ.get("BENCH_DRAIN_JOBS", 20000))
LATENCY_SAMPLES = int(os.environ.get("BENCH_LATENCY_SAMPLES", 200))
HTTP_SECONDS = float(os.environ.get("BENCH_HTTP_SECONDS", 8))
OTHER_DRAIN_JOBS = int(os.environ.get("BENCH_OTHER_DRAIN_JOBS", 5000))  # RQ runs a few hundred a second
BATCH_ITEMS = 100
THREADS = 4


def ini_for(tmp, port, app_use="egg:foodapp"):
    text = TESTING_INI.read_text().replace("use = egg:foodapp", f"use = {app_use}")
    text = re.sub(r"(?m)^listen = .*$", f"listen = 127.0.0.1:{port}", text)
    text = re.sub(r"(?m)^kitchen.preparation_seconds = .*$", "kitchen.preparation_seconds = 0", text)
    path = Path(tmp) / f"bench-{port}.ini"
    path.write_text(text)
    return path


def worker(tmp, kind, redis_url, threads=1, processes=1, prefetch=None):
    """A real `dramatiq` worker command; ``prefetch`` None is Dramatiq's default (2 x threads)."""
    env = {"BENCH_REDIS_URL": redis_url, "FOODAPP_REDIS_URL": redis_url, "FOODAPP_INI": str(TESTING_INI),
           "PYTHONPATH": str(ROOT)}
    if prefetch:
        env["dramatiq_queue_prefetch"] = str(prefetch)
    modules = ["bench.plain_broker"] if kind == "plain" else ["foodapp.worker", "bench.foodapp_actors"]
    return Process([BIN / "dramatiq", *modules, "--processes", processes, "--threads", threads, "--queues", "bench"],
                   Path(tmp) / f"worker-{kind}.log", env=env).start()


def broker_for(kind, redis_url):
    os.environ["BENCH_REDIS_URL"] = os.environ["FOODAPP_REDIS_URL"] = redis_url
    if kind == "plain":
        import importlib

        import bench.plain_broker as module
        return importlib.reload(module).broker
    from foodapp import broker as food
    from foodapp.settings import from_ini
    import plaster
    b = food.configure(from_ini(plaster.get_settings(str(TESTING_INI), "app:main")))
    import bench.probes as probes
    probes.declare(b)
    return b


def rss_kb(process):
    """RSS of the Dramatiq worker process (the child of the command's main process)."""
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    total = 0
    for pid in children or [str(process.pid)]:
        try:
            total += int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))
        except (OSError, AttributeError):
            pass
    return total


def drain(tmp, kind, processes=1, threads=THREADS, prefetch=None):
    """(jobs/s, worker RSS in kB) of one worker command draining DRAIN_JOBS queued no-op jobs."""
    with tempfile.TemporaryDirectory(dir=tmp) as here:
        server = RedisServer(here).start()
        try:
            broker = broker_for(kind, server.url)
            actor = broker.get_actor("noop")
            for _ in range(DRAIN_JOBS):
                broker.enqueue(actor.message())
            client = server.client()
            process = worker(here, kind, server.url, threads=threads, processes=processes, prefetch=prefetch)
            try:
                # From the first job taken (not the worker's start-up) to the last one acknowledged.
                wait_until(lambda: client.llen("dramatiq:bench") < DRAIN_JOBS, 60, f"the {kind} worker to start",
                           interval=0.001)
                started = time.monotonic()
                wait_until(lambda: client.llen("dramatiq:bench") == 0 and client.hlen("dramatiq:bench.msgs") == 0,
                           300, f"{kind} to drain {DRAIN_JOBS} jobs", interval=0.02)
                seconds = time.monotonic() - started
                return DRAIN_JOBS / seconds, rss_kb(process)
            finally:
                process.stop()
        finally:
            server.stop()


def latency(tmp, kind):
    """Enqueue -> start on an idle worker: one job at a time, after a pause."""
    with tempfile.TemporaryDirectory(dir=tmp) as here:
        server = RedisServer(here).start()
        try:
            broker = broker_for(kind, server.url)
            process = worker(here, kind, server.url)
            try:
                client = server.client()
                probe = broker.get_actor("probe")
                probe.send(time.time())  # warm up: the worker is up once this one ran
                wait_until(lambda: client.llen("bench:latency") == 1, 60, f"the {kind} worker to start")
                client.delete("bench:latency")
                for i in range(LATENCY_SAMPLES):
                    time.sleep(0.02 if i % 10 else 1.2)  # idle gaps; every tenth long enough to back off fully
                    probe.send(time.time())
                    wait_until(lambda: client.llen("bench:latency") > i, 10, "the probe to run", interval=0.0005)
            finally:
                process.stop()
            values = sorted(float(v) * 1000 for v in client.lrange("bench:latency", 0, -1))
            return statistics.median(values), values[int(len(values) * 0.99) - 1], values[-1]
        finally:
            server.stop()


WRK = shutil.which("wrk")
#: The HTTP load generator: wrk (Debian's package; `make bench` installs it when it can),
#: else a Python one. Named in the table: their figures are not comparable.
LOAD_GENERATOR = f"wrk, {THREADS} connections" if WRK else f"Python threads, {THREADS} clients (no wrk)"


def http_load(url, seconds, connections=THREADS):
    """(requests/s, p99 ms) of GET /comer/<item> from ``connections`` clients for ``seconds``."""
    if WRK:
        return _wrk(f"{url}/comer/plato", seconds, connections)
    latencies, lock, stop = [], threading.Lock(), time.monotonic() + seconds

    def loop(n):
        i = 0
        while time.monotonic() < stop:
            i += 1
            began = time.monotonic()
            status, _, _ = http("GET", f"{url}/comer/plato{n}-{i}", timeout=10)
            assert status == 202, status
            with lock:
                latencies.append(time.monotonic() - began)
    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(loop, range(connections)))
    ordered = sorted(latencies)
    return len(ordered) / seconds, ordered[int(len(ordered) * 0.99) - 1] * 1000


def _wrk(url, seconds, connections, *options):
    threads = min(2, connections)
    out = subprocess.run([WRK, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
                          "--latency", *map(str, options), url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise AssertionError(f"wrk saw failed requests against {url}:\n{out}")
    units = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), float(p99.group(1)) * units[p99.group(2)]


def http_enqueue(tmp, app_use):
    with tempfile.TemporaryDirectory(dir=tmp) as here:
        server = RedisServer(here).start()
        port = free_port()
        web = Process([BIN / "pserve", ini_for(here, port, app_use)], Path(here) / "web.log",
                      env={"FOODAPP_REDIS_URL": server.url, "PYTHONPATH": str(ROOT)}).start()
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: _answers(url), 30, "the web app")
            http_load(url, 1)  # warm up
            return http_load(url, HTTP_SECONDS)
        finally:
            web.stop()
            server.stop()


def _answers(url):
    try:
        return http("GET", f"{url}/comer/warm", timeout=1)[0] == 202
    except OSError:
        return False


def batch_enqueue(tmp):
    with tempfile.TemporaryDirectory(dir=tmp) as here:
        server = RedisServer(here).start()
        port = free_port()
        web = Process([BIN / "pserve", ini_for(here, port)], Path(here) / "web.log",
                      env={"FOODAPP_REDIS_URL": server.url}).start()
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: _answers(url), 30, "the web app")
            menu = json.dumps([{"comer": f"plato{i}"} for i in range(BATCH_ITEMS)])
            if WRK:
                # One connection, as redis-benchmark's one client.
                script = Path(here) / "menu.lua"
                script.write_text(f"wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\n"
                                  f"wrk.body = {json.dumps(menu)}\n")
                rps, _ = _wrk(f"{url}/menu", HTTP_SECONDS, 1, "-s", script)
                ours = rps * BATCH_ITEMS
            else:
                requests, began = 200, time.monotonic()
                for _ in range(requests):
                    status, _, _ = http("POST", f"{url}/menu", headers={"Content-Type": "application/json"},
                                        body=menu.encode())
                    assert status == 202
                ours = requests * BATCH_ITEMS / (time.monotonic() - began)
            if not shutil.which("redis-benchmark"):
                raise SystemExit("redis-benchmark (the batch baseline) is missing: apt-get install redis-tools, "
                                 "or run `make bench` as root, which installs it")
            out = subprocess.run(["redis-benchmark", "-p", str(server.port), "-t", "lpush", "-c", "1", "-n", "20000", "-q"],
                                 capture_output=True, text=True, timeout=120).stdout
            baseline = float(re.search(r"LPUSH[^:]*:\s*([\d.]+)", out).group(1))
            return ours, baseline
        finally:
            web.stop()
            server.stop()


def row(figure, ours, baseline, theirs, ratio, target, met):
    return {"figure": figure, "foodapp": ours, "baseline": baseline, "baseline_value": theirs,
            "ratio": ratio, "target": target, "met": met}


def measure(tmp):
    """Every figure, foodapp and its baseline back to back; returns the table's rows."""
    from bench import others, recovery

    rows = []
    food_rps, food_p99 = http_enqueue(tmp, "egg:foodapp")
    bare_rps, bare_p99 = http_enqueue(tmp, "call:bench.bare_app:main")
    send_rps, _ = http_enqueue(tmp, "call:bench.send_app:main")
    rows.append(row(f"HTTP enqueue /comer/x, req/s ({LOAD_GENERATOR})", food_rps, "bare Pyramid JSON view", bare_rps,
                    food_rps / bare_rps, ">= 0.80", food_rps / bare_rps >= 0.8))
    rows.append(row("HTTP enqueue p99, ms", food_p99, "bare Pyramid JSON view", bare_p99, bare_p99 / food_p99,
                    "(ratio: baseline/foodapp)", None))
    rows.append(row("HTTP enqueue, req/s (reference)", food_rps, "a view calling plain Dramatiq send()", send_rps,
                    food_rps / send_rps, "(none: context)", None))

    food_jobs, food_rss = drain(tmp, "foodapp")
    plain_jobs, plain_rss = drain(tmp, "plain")
    rows.append(row(f"worker drain of {DRAIN_JOBS} no-op jobs, jobs/s (1 process, {THREADS} threads)", food_jobs,
                    "plain Dramatiq worker", plain_jobs, food_jobs / plain_jobs, ">= 1.0", food_jobs / plain_jobs >= 1.0))
    rows.append(row("worker RSS after the drain, MB", food_rss / 1024, "plain Dramatiq worker", plain_rss / 1024,
                    food_rss / plain_rss, "<= 1.2", food_rss / plain_rss <= 1.2))
    rq_jobs = others.drain_rq(tmp, OTHER_DRAIN_JOBS)
    rows.append(row(f"the same drain, jobs/s (RQ: {OTHER_DRAIN_JOBS} jobs)", food_jobs,
                    f"RQ {others.versions('rq').get('rq', '')} SimpleWorker", rq_jobs, food_jobs / rq_jobs, ">= 8",
                    food_jobs / rq_jobs >= 8))
    celery_jobs = others.drain_celery(tmp, OTHER_DRAIN_JOBS)
    rows.append(row(f"the same drain, jobs/s (Celery: {OTHER_DRAIN_JOBS} jobs)", food_jobs,
                    f"Celery {others.versions('celery').get('celery', '')} prefork, concurrency {others.CELERY_CONCURRENCY}",
                    celery_jobs, food_jobs / celery_jobs, ">= 4", food_jobs / celery_jobs >= 4))

    batch_jobs, lpush = batch_enqueue(tmp)
    rows.append(row(f"batch enqueue (POST /menu, {BATCH_ITEMS} items), jobs/s", batch_jobs,
                    "redis-benchmark lpush -c 1, ops/s", lpush, batch_jobs / lpush, ">= 3", batch_jobs / lpush >= 3))

    food_lat = latency(tmp, "foodapp")
    plain_lat = latency(tmp, "plain")
    for name, ours, theirs, limit in zip(("p50", "p99", "max"), food_lat, plain_lat, (1, 5, 25)):
        rows.append(row(f"enqueue -> start on an idle worker, {name}, ms", ours, "plain Dramatiq", theirs,
                        theirs / ours if ours else float("inf"), f"<= {limit} ms (ratio: baseline/foodapp)",
                        ours <= limit))

    found = {}
    food_kill, plain_kill = recovery.worker_kill(tmp, found)
    capped = " (not running again by then: the cap)" if found["plain"]["capped"] else ""
    rows.append(row("worker kill -9 -> job running again, s", food_kill, f"Dramatiq's default settings{capped}",
                    plain_kill, plain_kill / food_kill, "<= 15 s (ratio: baseline/foodapp)", food_kill <= 15))
    first_202, down_after = recovery.master_kill(tmp, {})
    rows.append(row("master kill -9 -> first accepted enqueue, s", first_202, "Sentinel down-after-milliseconds, s",
                    down_after, down_after / first_202, f"<= down-after + 2 = {down_after + 2:g} s",
                    first_202 <= down_after + 2))
    return rows


def main():
    tmp = tempfile.mkdtemp(prefix="foodapp-bench-")
    began = time.monotonic()
    try:
        rows = measure(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    marks = {True: "yes", False: "**no**", None: ""}
    table = ["| figure | foodapp | baseline | baseline value | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]
    table += [f"| {r['figure']} | {r['foodapp']:.2f} | {r['baseline']} | {r['baseline_value']:.2f} | {r['ratio']:.2f} "
              f"| {r['target']} | {marks[r['met']]} |" for r in rows]
    print("\n".join(table))
    machine = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
               "processor": platform.processor(), "load_generator": LOAD_GENERATOR,
               "seconds": round(time.monotonic() - began, 1)}
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    doc = ROOT / "docs" / "bench.md"
    text = doc.read_text()
    start, end = text.index("<!-- table -->"), text.index("<!-- /table -->")
    doc.write_text(text[:start] + "<!-- table -->\n" + "\n".join(table) +
                   f"\n\nMeasured on {machine['platform']}, {machine['cpus']} cores, Python {machine['python']}, "
                   f"load generator {LOAD_GENERATOR}, in {machine['seconds']} s.\n" + text[end:])


if __name__ == "__main__":
    main()
