"""`make bench`: foodapp against baselines measured in the same run, each at its best, as ratios.

Every figure runs foodapp and its baseline back to back, on private redis-servers started
here (free ports of 127.0.0.1, never 6379), the same cores, the same settings; all traffic
goes to 127.0.0.1. Each baseline runs as its own users would run it at its best, and the
table says how (docs/bench.md says more). The table is printed, written to
bench/results/latest.json with the machine's description, appended to
bench/results/history.jsonl, drawn (the ratios of the last runs) into
bench/results/ratios.svg, and put into docs/bench.md. Bounded: each measurement has a count
and a deadline. A line per figure says when it starts and ends.

Counts come from the environment: BENCH_DRAIN_JOBS (20000), BENCH_OTHER_DRAIN_JOBS (5000,
RQ and Celery), BENCH_HTTP_SECONDS (8), BENCH_LATENCY_SAMPLES (200), BENCH_PREFETCHES
("default,32,64,128"), BENCH_CELERY_MULTIPLIERS ("1,4,16"), BENCH_ONLY (a comma list of
steps, e.g. "drain,batch": only those; the history and docs are then left alone unless
BENCH_RECORD=1).
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
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import BIN, TESTING_INI, Process, RedisServer, free_port, http, wait_until  # noqa: E402

from bench import history  # noqa: E402

DRAIN_JOBS = int(os.environ.get("BENCH_DRAIN_JOBS", 20000))
LATENCY_SAMPLES = int(os.environ.get("BENCH_LATENCY_SAMPLES", 200))
HTTP_SECONDS = float(os.environ.get("BENCH_HTTP_SECONDS", 8))
#: HTTP and batch loads are split into this many rounds, foodapp and its baselines taking turns.
HTTP_ROUNDS = int(os.environ.get("BENCH_HTTP_ROUNDS", 2))
SCALE_ROUNDS = int(os.environ.get("BENCH_SCALE_ROUNDS", 2))
OTHER_DRAIN_JOBS = int(os.environ.get("BENCH_OTHER_DRAIN_JOBS", 5000))  # RQ runs a few hundred a second
#: Dramatiq's prefetch per consumer (env dramatiq_queue_prefetch); None is its default, 2 x threads.
PREFETCHES = [None if p.strip() == "default" else int(p)
              for p in os.environ.get("BENCH_PREFETCHES", "default,32,64,128").split(",") if p.strip()]
CELERY_MULTIPLIERS = [int(m) for m in os.environ.get("BENCH_CELERY_MULTIPLIERS", "1,4,16").split(",") if m.strip()]
BATCH_ITEMS = 100
THREADS = 4
DEVELOPMENT_INI = ROOT / "development.ini"
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "bench.md"
STEPS = ("http", "drain", "others", "batch", "latency", "recovery")


def say(text):
    print(f"bench {time.strftime('%H:%M:%S')} {text}", flush=True)


@contextmanager
def step(name):
    """A line when a measurement starts and one when it ends (with its time)."""
    say(f"{name} ...")
    began = time.monotonic()
    outcome = {}
    try:
        yield outcome
    except BaseException as error:
        say(f"{name}: FAILED after {time.monotonic() - began:.0f} s ({type(error).__name__})")
        raise
    say(f"{name}: {outcome.get('result', 'done')} ({time.monotonic() - began:.0f} s)")


def prefetch_name(prefetch, threads=THREADS):
    return f"default ({2 * threads})" if prefetch is None else str(prefetch)


# -- workers and drains -----------------------------------------------------------------------

def ini_for(tmp, port, app_use="egg:foodapp", base=TESTING_INI, name="bench"):
    text = Path(base).read_text().replace("use = egg:foodapp\n", f"use = {app_use}\n", 1)
    text = re.sub(r"(?m)^listen = .*$", f"listen = 127.0.0.1:{port}", text)
    text = re.sub(r"(?m)^kitchen.preparation_seconds = .*$", "kitchen.preparation_seconds = 0", text)
    path = Path(tmp) / f"{name}-{port}.ini"
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


def pipelined_enqueue(broker, messages):
    """Plain Dramatiq's own enqueue (its dispatch script, before/after hooks, a fresh redis
    message id each) for many messages, in one redis-py pipeline: one round trip."""
    from dramatiq.common import current_millis

    dispatch, prepared = broker.scripts["dispatch"], []
    with broker.client.pipeline(transaction=False) as pipe:
        for message in messages:
            message = message.copy(options={"redis_message_id": str(uuid4())})
            broker.emit_before("enqueue", message, None)
            dispatch(keys=[broker.namespace],
                     args=["enqueue", current_millis(), message.queue_name, broker.broker_id,
                           broker.heartbeat_timeout, broker.dead_message_ttl, 0, broker._max_unpack_size(),
                           message.options["redis_message_id"], message.encode()],
                     client=pipe)
            prepared.append(message)
        pipe.execute()
    for message in prepared:
        broker.emit_after("enqueue", message, None)
    return prepared


def fill(kind, broker, jobs, chunk=500):
    """``jobs`` no-op messages on the queue "bench", in chunks (not timed)."""
    actor = broker.get_actor("noop")
    for start in range(0, jobs, chunk):
        messages = [actor.message() for _ in range(min(chunk, jobs - start))]
        if kind == "plain":
            pipelined_enqueue(broker, messages)
        elif hasattr(broker, "enqueue_many"):
            broker.enqueue_many([(message, None) for message in messages])
        else:
            for message in messages:
                broker.enqueue(message)


def rss_kb(process):
    """RSS of the Dramatiq worker processes (the children of the command's main process)."""
    total = 0
    for pid in worker_pids(process):
        try:
            total += int(re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))
        except (OSError, AttributeError):
            pass
    return total


def cpu_seconds(pids):
    """CPU seconds the processes ``pids`` have used so far: each thread's time on a CPU, in
    nanoseconds (/proc/<pid>/task/<tid>/schedstat), not the 10 ms ticks of /proc/<pid>/stat."""
    total = 0
    for pid in pids:
        for schedstat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            try:
                total += int(schedstat.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # a thread that ended meanwhile
    return total / 1e9


def worker_pids(process):
    """The worker processes of a `dramatiq` command (its main process's children)."""
    children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in children] or [process.pid]


def drain(tmp, kind, processes=1, threads=THREADS, prefetch=None, jobs=None):
    """(jobs/s, worker RSS in kB, CPU µs a job) of one worker command draining ``jobs`` queued
    no-op jobs; the CPU is {"worker": ..., "redis": ...}, user + system time over the drain."""
    jobs = jobs or DRAIN_JOBS
    with tempfile.TemporaryDirectory(dir=tmp) as here:
        server = RedisServer(here).start()
        try:
            broker = broker_for(kind, server.url)
            fill(kind, broker, jobs)
            client = server.client()
            queued = client.llen("dramatiq:bench")
            assert queued == jobs, f"{queued} jobs queued for the {kind} drain, not {jobs}"
            process = worker(here, kind, server.url, threads=threads, processes=processes, prefetch=prefetch)
            try:
                def started():
                    if not process.alive():
                        raise AssertionError(f"the {kind} worker exited:\n{process.output()[-3000:]}")
                    return client.llen("dramatiq:bench") < jobs
                # From the first job taken (not the worker's start-up) to the last one acknowledged.
                wait_until(started, 60, f"the {kind} worker to start", interval=0.001)
                began = time.monotonic()
                pids = worker_pids(process)
                cpu = (cpu_seconds(pids), cpu_seconds([server.pid]))
                wait_until(lambda: client.llen("dramatiq:bench") == 0 and client.hlen("dramatiq:bench.msgs") == 0,
                           60 + jobs / 50, f"{kind} to drain {jobs} jobs", interval=0.01)
                seconds = time.monotonic() - began
                per_job = {"worker": (cpu_seconds(pids) - cpu[0]) / jobs * 1e6,
                           "redis": (cpu_seconds([server.pid]) - cpu[1]) / jobs * 1e6}
                return jobs / seconds, rss_kb(process), per_job
            finally:
                process.stop()
                client.connection_pool.disconnect()
                if getattr(broker, "client", None) is not None:
                    broker.client.connection_pool.disconnect()
        finally:
            server.stop()


def drain_sweep(tmp, prefetches=None, jobs=None, threads=THREADS):
    """foodapp and plain Dramatiq, 1 process x ``threads``, at each prefetch, interleaved.

    Returns {"foodapp": {prefetch: (jobs/s, rss kB, CPU µs a job)}, "plain": {...}} (prefetch None:
    default)."""
    found = {"foodapp": {}, "plain": {}}
    for prefetch in prefetches or PREFETCHES:
        for kind in ("foodapp", "plain"):
            with step(f"drain: {kind}, 1 process x {threads} threads, prefetch {prefetch_name(prefetch, threads)}") as s:
                found[kind][prefetch] = drain(tmp, kind, threads=threads, prefetch=prefetch, jobs=jobs)
                rate, _, cpu = found[kind][prefetch]
                s["result"] = f"{rate:.0f} jobs/s; CPU a job: worker {cpu['worker']:.0f} µs, Redis {cpu['redis']:.0f} µs"
    return found


def best(sweep):
    """(prefetch, jobs/s) of the fastest entry of one kind's sweep."""
    prefetch = max(sweep, key=lambda p: sweep[p][0])
    return prefetch, sweep[prefetch][0]


def sweep_text(sweep, threads=THREADS):
    return ", ".join(f"{prefetch_name(p, threads)}: {v[0]:.0f}" for p, v in sweep.items())


def scale(tmp, kind, prefetch, threads=THREADS, jobs=None):
    """([(1 x threads jobs/s, CPU µs a job), ...], [(2 x threads jobs/s, CPU µs a job), ...]):
    SCALE_ROUNDS drains of each, interleaved, at ``prefetch``; the CPU is the worker
    processes' and redis-server's, added up."""
    one, two = [], []
    for round_ in range(SCALE_ROUNDS):
        for processes, found in ((1, one), (2, two)):
            with step(f"drain: {kind}, {processes} process{'es' if processes > 1 else ''} x {threads} threads, "
                      f"prefetch {prefetch_name(prefetch, threads)}, round {round_ + 1}/{SCALE_ROUNDS}") as s:
                rate, _, cpu = drain(tmp, kind, processes=processes, threads=threads, prefetch=prefetch, jobs=jobs)
                found.append((rate, sum(cpu.values())))
                s["result"] = f"{rate:.0f} jobs/s; {rate * sum(cpu.values()) / 1e6:.2f} cores busy"
    return one, two


def scaling_cores(one, two, target=1.7):
    """What bounds 2 processes ÷ 1 on this machine, from ``scale()``'s best tries: the cores
    the 2-process drain kept busy (its rate times its CPU a job, worker and Redis), and the
    cores ``target`` times the 1-process rate would take at that same CPU a job. More than
    the machine has: the target is out of reach unless a job costs less CPU."""
    rate_one, _ = max(one)
    rate_two, cpu_two = max(two)
    return {"busy": rate_two * cpu_two / 1e6, "needed": target * rate_one * cpu_two / 1e6,
            "cpu_us": cpu_two}


def drain_rows(tmp, jobs=None, prefetches=None, threads=THREADS, details=None):
    """The drain figures: each at its best prefetch and at default, RSS, and 2 processes ÷ 1."""
    jobs = jobs or DRAIN_JOBS
    details = {} if details is None else details
    prefetches = prefetches or PREFETCHES
    sweep = drain_sweep(tmp, prefetches, jobs, threads)
    food_p, food_best = best(sweep["foodapp"])
    plain_p, plain_best = best(sweep["plain"])
    tried = ", ".join(prefetch_name(p, threads) for p in prefetches)
    details["drain_sweep"] = {kind: {prefetch_name(p, threads): round(v[0], 1) for p, v in values.items()}
                              for kind, values in sweep.items()}
    # 2 processes ÷ 1, each kind at its best prefetch: both measured afresh, interleaved, in
    # SCALE_ROUNDS rounds, each one's best counting (as the HTTP rows' rounds). Not ÷ the
    # sweep's best: that is the best of four tries, and one try of two processes against it
    # read a burst of load, or a lucky 1 x 4 try, as scaling.
    scaling = {kind: scale(tmp, kind, prefetch, threads, jobs) for kind, prefetch in (("foodapp", food_p),
                                                                                      ("plain", plain_p))}
    # Each kind's drain at its best prefetch: the best of its tries there, the sweep's and the
    # scaling's 1-process rounds (one try each read 0.99 and, minutes later, 1.15-1.24 in the
    # twenty-second run: the machine, not the code).
    food_best = max(food_best, *(rate for rate, _ in scaling["foodapp"][0]))
    plain_best = max(plain_best, *(rate for rate, _ in scaling["plain"][0]))
    rows = [row("drain_best", f"worker drain of {jobs} no-op jobs, jobs/s, 1 process x {threads} threads, "
                f"each at its best prefetch (foodapp: {prefetch_name(food_p, threads)}), best of its "
                f"{1 + SCALE_ROUNDS} tries there", food_best,
                f"plain Dramatiq at its best prefetch ({prefetch_name(plain_p, threads)}; tried {tried}), the same",
                plain_best, food_best / plain_best, ">= 1.0", food_best / plain_best >= 1.0)]
    # What each job cost the machine in that drain (worker processes and redis-server, user +
    # system CPU): a figure of work, where the drain's rate also counts time spent waiting.
    food_cpu, plain_cpu = sweep["foodapp"][food_p][2], sweep["plain"][plain_p][2]
    details["drain_cpu_us"] = {"foodapp": {k: round(v, 1) for k, v in food_cpu.items()},
                               "plain": {k: round(v, 1) for k, v in plain_cpu.items()}}
    food_total, plain_total = sum(food_cpu.values()), sum(plain_cpu.values())
    rows.append(row("drain_cpu", "CPU a job in that drain, worker + Redis, µs (foodapp: worker "
                    f"{food_cpu['worker']:.0f} + Redis {food_cpu['redis']:.0f})", food_total,
                    f"plain Dramatiq, same drain (worker {plain_cpu['worker']:.0f} + Redis {plain_cpu['redis']:.0f}); "
                    "ratio: plain ÷ foodapp", plain_total, plain_total / food_total if food_total else float("inf"),
                    "(context)", None))
    default = None if None in sweep["foodapp"] else prefetches[0]
    food_d, food_rss, _ = sweep["foodapp"][default]
    plain_d, plain_rss, _ = sweep["plain"][default]
    rows.append(row("drain_default", f"the same drain, both at prefetch {prefetch_name(default, threads)}", food_d,
                    "plain Dramatiq worker", plain_d, food_d / plain_d, "(context)", None))
    rows.append(row("rss", "worker RSS after that drain, MB", food_rss / 1024, "plain Dramatiq worker",
                    plain_rss / 1024, food_rss / plain_rss, "<= 1.2", food_rss / plain_rss <= 1.2))
    details["drain_scaling"] = {kind: {"1 process": [round(v, 1) for v, _ in one],
                                       "2 processes": [round(v, 1) for v, _ in two],
                                       "cores": {k: round(v, 2) for k, v in scaling_cores(one, two).items()}}
                                for kind, (one, two) in scaling.items()}
    (food_one, food_two), (plain_one, plain_two) = ((max(one)[0], max(two)[0]) for one, two in scaling.values())
    rows.append(row("drain_scales", f"drain scales: foodapp 2 processes x {threads} threads, jobs/s "
                    f"(prefetch {prefetch_name(food_p, threads)}; {os.cpu_count()} cores; best of {SCALE_ROUNDS}, "
                    "interleaved)", food_two, f"foodapp 1 process x {threads} threads, same prefetch, same rounds",
                    food_one, food_two / food_one, ">= 1.7", food_two / food_one >= 1.7))
    rows.append(row("drain_scales_plain", f"drain scales, 2 processes ÷ 1 (foodapp as above: {food_two / food_one:.2f})",
                    food_two / food_one, f"plain Dramatiq, 2 processes x {threads} threads ÷ 1 x {threads}, prefetch "
                    f"{prefetch_name(plain_p, threads)}, measured the same way", plain_two / plain_one,
                    food_two / food_one / (plain_two / plain_one), "(context)", None))
    food_cores, plain_cores = (details["drain_scaling"][kind]["cores"] for kind in ("foodapp", "plain"))
    rows.append(row("drain_scales_cores", f"cores 2 processes ÷ 1 = 1.7 needs at the CPU a job of the 2-process "
                    f"drain (foodapp {food_cores['cpu_us']:.0f} µs; its 2 processes kept {food_cores['busy']:.2f} of "
                    f"{os.cpu_count()} cores busy, worker + Redis)", food_cores["needed"],
                    f"plain Dramatiq, the same ({plain_cores['cpu_us']:.0f} µs a job; {plain_cores['busy']:.2f} "
                    "cores busy)", plain_cores["needed"], food_cores["needed"] / plain_cores["needed"],
                    "(context)", None))
    details["foodapp_best_drain"] = food_best
    details["foodapp_best_prefetch"] = food_p
    return rows


def redis_cost_rows(details):
    """What a job costs Redis from its order to its end: the order's (development profile's
    HTTP rounds) and the drain's (fetch, start, done), each as measured; with one Redis (the
    master, in production) for every web process and worker, it is what the whole
    deployment can carry at most."""
    orders, drains = details.get("http_redis_cpu_us", {}), details.get("drain_cpu_us", {})
    if "foodapp" not in orders or "send() view" not in orders or not drains:
        return []
    food = orders["foodapp"] + drains["foodapp"]["redis"]
    plain = orders["send() view"] + drains["plain"]["redis"]
    return [row("redis_cpu_job", "Redis CPU a job, end to end: its order (GET /comer/x, development profile: "
                f"{orders['foodapp']:.0f} µs) + its drain (fetch, start, done: {drains['foodapp']['redis']:.0f} µs), µs; "
                f"one Redis core carries at most {1e6 / food:,.0f} jobs/s", food,
                f"plain Dramatiq (its send() view's order {orders['send() view']:.0f} µs + its drain "
                f"{drains['plain']['redis']:.0f} µs); ratio: plain ÷ foodapp", plain,
                plain / food if food else float("inf"), "(context)", None)]


# -- other job queues ---------------------------------------------------------------------------

def other_rows(tmp, food_best, details, jobs=None, other_jobs=None, threads=THREADS):
    """RQ, Celery and Sidekiq against foodapp's best drain (1 process x ``threads``)."""
    from bench import others

    jobs, other_jobs = jobs or DRAIN_JOBS, other_jobs or OTHER_DRAIN_JOBS
    rows = []
    rq = {}
    for way in others.RQ_WAYS:
        with step(f"drain: {others.rq_how(way, threads)}, {other_jobs} jobs") as s:
            rq[way] = others.drain_rq(tmp, other_jobs, workers=threads, way=way)
            s["result"] = f"{rq[way]:.0f} jobs/s"
    way = max(rq, key=rq.get)
    details["rq"] = {others.rq_how(w, threads): round(v, 1) for w, v in rq.items()}
    rows.append(row("rq", f"worker drain ÷ RQ ({other_jobs} jobs), jobs/s", food_best,
                    f"{others.rq_how(way, threads)} (best of: {', '.join(others.RQ_WAYS)})", rq[way],
                    food_best / rq[way], "(context; was >= 8 vs 1 SimpleWorker)", None))

    celery = {}
    for multiplier in CELERY_MULTIPLIERS:
        with step(f"drain: {others.celery_how(threads)}, prefetch multiplier {multiplier}, {other_jobs} jobs") as s:
            celery[multiplier] = others.drain_celery(tmp, other_jobs, concurrency=threads, multiplier=multiplier)
            s["result"] = f"{celery[multiplier]:.0f} jobs/s"
    multiplier = max(celery, key=celery.get)
    details["celery"] = {f"prefetch multiplier {m}": round(v, 1) for m, v in celery.items()}
    rows.append(row("celery", f"worker drain ÷ Celery ({other_jobs} jobs), jobs/s", food_best,
                    f"{others.celery_how(threads)}, prefetch multiplier {multiplier} "
                    f"(best of {', '.join(map(str, CELERY_MULTIPLIERS))})", celery[multiplier],
                    food_best / celery[multiplier], "(context; was >= 4 at its default)", None))

    if others.SIDEKIQ:
        # Back to back: foodapp again at its best prefetch, then Sidekiq, so both see the same machine.
        prefetch = details.get("foodapp_best_prefetch")
        with step(f"drain: foodapp again, 1 process x {threads} threads, prefetch {prefetch_name(prefetch, threads)}, "
                  f"just before Sidekiq") as s:
            food_now, _, food_cpu = drain(tmp, "foodapp", threads=threads, prefetch=prefetch, jobs=jobs)
            s["result"] = f"{food_now:.0f} jobs/s"
        with step(f"drain: Sidekiq, concurrency {threads}, {jobs} jobs") as s:
            sidekiq_cpu = {}
            sidekiq = others.drain_sidekiq(tmp, jobs, concurrency=threads, cpu=sidekiq_cpu)
            s["result"] = f"{sidekiq:.0f} jobs/s"
        details["sidekiq"] = {"foodapp just before": round(food_now, 1), "sidekiq": round(sidekiq, 1)}
        details["sidekiq_cpu_us"] = {"foodapp": {k: round(v, 1) for k, v in food_cpu.items()},
                                     "sidekiq": {k: round(v, 1) for k, v in sidekiq_cpu.items()}}
        rows.append(row("sidekiq", f"worker drain ÷ Sidekiq ({jobs} jobs, 1 process x {threads} threads, foodapp at "
                        f"prefetch {prefetch_name(prefetch, threads)}, measured just before), jobs/s", food_now,
                        f"Sidekiq {others.sidekiq_version()} (Debian ruby-sidekiq), 1 process, concurrency {threads}",
                        sidekiq, food_now / sidekiq, ">= 1.0", food_now / sidekiq >= 1.0))
        food_total, sidekiq_total = sum(food_cpu.values()), sum(sidekiq_cpu.values())
        rows.append(row("sidekiq_cpu", "CPU a job in those two drains, worker + Redis, µs (foodapp: worker "
                        f"{food_cpu['worker']:.0f} + Redis {food_cpu['redis']:.0f})", food_total,
                        f"Sidekiq (Ruby {sidekiq_cpu['worker']:.0f} + Redis {sidekiq_cpu['redis']:.0f}); "
                        "ratio: Sidekiq ÷ foodapp", sidekiq_total,
                        sidekiq_total / food_total if food_total else float("inf"), "(context)", None))
    else:
        say("drain: Sidekiq SKIPPED: no `sidekiq` command (apt-get install ruby-sidekiq, or run `make bench` as "
            "root, which installs it)")
        details["sidekiq"] = "skipped: ruby-sidekiq not installed"
    return rows


# -- HTTP -----------------------------------------------------------------------------------

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


def _answers(url):
    try:
        return http("GET", f"{url}/comer/warm", timeout=1)[0] == 202
    except OSError:
        return False


def serve(here, ini, env, name):
    """pserve ``ini``, once it answers an order; the Process."""
    port = int(re.search(r"(?m)^listen = 127\.0\.0\.1:(\d+)", Path(ini).read_text()).group(1))
    web = Process([BIN / "pserve", ini], Path(here) / f"{name}.log", env={"PYTHONPATH": str(ROOT), **env}).start()
    url = f"http://127.0.0.1:{port}"

    def up():
        if not web.alive():
            raise AssertionError(f"pserve {ini} exited:\n{web.output()[-3000:]}")
        return _answers(url)
    try:
        wait_until(up, 30, f"the web app ({name})")
    except BaseException:
        web.stop()
        raise
    return web, url


def settled(count, quiet=0.3, most=10):
    """``count()`` once it has not changed for ``quiet`` seconds (at most ``most`` s)."""
    deadline = time.monotonic() + most
    value = count()
    while time.monotonic() < deadline:
        time.sleep(quiet)  # a quiet period is what is waited for: no condition to poll
        now = count()
        if now == value:
            return now
        value = now
    return value


def http_compare(here, apps, env, profile, waits=None, redis_cpu=None):
    """{name: (req/s, p99 ms)} of GET /comer/plato against each of ``apps`` ({name: ini}).

    All are served at once and warmed up; then HTTP_ROUNDS rounds of HTTP_SECONDS /
    HTTP_ROUNDS each, the apps taking turns, so a burst of load on the machine falls on all
    of them alike; each app's best round counts. ``waits``, if given, counts the WAIT calls
    Redis has seen: {name: WAITs during that app's load} is checked by the caller.
    ``redis_cpu``, a dict, gets {name: redis-server's CPU µs a request} over all rounds
    (``redis_cpu["pid"]``: redis-server's pid)."""
    webs, found, waited = {}, {name: [] for name in apps}, {name: 0 for name in apps}
    pid = redis_cpu.pop("pid") if redis_cpu is not None else None
    spent = {name: [0.0, 0.0] for name in apps}  # redis-server CPU seconds, requests
    try:
        with step(f"http: {profile}, starting {', '.join(apps)}"):
            for name, ini in apps.items():
                webs[name] = serve(here, ini, env, name.replace(" ", "-").replace("/", "-"))
            for _, url in webs.values():
                http_load(url, 1)  # warm up
        for round_ in range(HTTP_ROUNDS):
            for name, (_, url) in webs.items():
                with step(f"http: {profile}, {name}, round {round_ + 1}/{HTTP_ROUNDS}") as s:
                    # The app before may still be answering what the load generator sent
                    # last (waitress queues requests): its WAITs are not this app's.
                    before = settled(waits) if waits else 0
                    cpu = cpu_seconds([pid]) if pid else 0.0
                    found[name].append(http_load(url, HTTP_SECONDS / HTTP_ROUNDS))
                    if pid:
                        spent[name][0] += cpu_seconds([pid]) - cpu
                        spent[name][1] += found[name][-1][0] * max(1, round(HTTP_SECONDS / HTTP_ROUNDS))
                    waited[name] += (waits() - before) if waits else 0
                    s["result"] = "{:.0f} req/s, p99 {:.2f} ms".format(*found[name][-1])
    finally:
        for web, _ in webs.values():
            web.stop()
    if redis_cpu is not None:
        redis_cpu.update({name: seconds / requests * 1e6 for name, (seconds, requests) in spent.items() if requests})
    return {name: max(tries, key=lambda t: t[0]) for name, tries in found.items()}, waited


def production_ini(here, name, app_use="egg:foodapp", **values):
    from bench import recovery
    path = recovery.production_ini(here, name, free_port(), **values)
    path.write_text(path.read_text().replace("use = egg:foodapp\n", f"use = {app_use}\n", 1))
    return path


def http_rows(tmp, details=None):
    """HTTP enqueue in the development profile (one Redis) and the production one (a replica, WAIT)."""
    details = {} if details is None else details
    rows = []
    with tempfile.TemporaryDirectory(dir=tmp, prefix="http-dev-") as here:
        server = RedisServer(here).start()
        redis_cpu = {"pid": server.pid}
        try:
            ini = lambda use: ini_for(here, free_port(), use, base=DEVELOPMENT_INI, name="development")  # noqa: E731
            found, _ = http_compare(here, {"foodapp": ini("egg:foodapp"), "bare view": ini("call:bench.bare_app:main"),
                                           "send() view": ini("call:bench.send_app:main"),
                                           "PING view": ini("call:bench.ping_app:main")},
                                    {"FOODAPP_REDIS_URL": server.url}, "development profile",
                                    redis_cpu=redis_cpu)
        finally:
            server.stop()
    details["http_redis_cpu_us"] = {name: round(redis_cpu[name], 1) for name in ("foodapp", "send() view")
                                    if name in redis_cpu}
    food, bare, send, ping = found["foodapp"], found["bare view"], found["send() view"], found["PING view"]
    what = f"HTTP enqueue GET /comer/x, development profile, req/s ({LOAD_GENERATOR})"
    rows.append(row("http_dev_bare", what, food[0], "bare Pyramid JSON view, same waitress", bare[0],
                    food[0] / bare[0], ">= 0.80", food[0] / bare[0] >= 0.8))
    rows.append(row("http_dev_send", what, food[0], "a view calling plain Dramatiq send()", send[0],
                    food[0] / send[0], ">= 1.0", food[0] / send[0] >= 1.0))
    rows.append(row("http_dev_p99", "HTTP enqueue p99, development profile, ms", food[1], "bare Pyramid JSON view",
                    bare[1], bare[1] / food[1], "(context; ratio: baseline/foodapp)", None))
    rows.append(row("http_dev_ping", "a view making one Redis round trip (a script that only returns, on a connection of the "
                    "thread's own, as foodapp's orders make theirs) and nothing else, development "
                    "profile, req/s: the most any view that stores a job can read ÷ bare", ping[0],
                    "bare Pyramid JSON view, same waitress", bare[0], ping[0] / bare[0], "(context)", None))

    with tempfile.TemporaryDirectory(dir=tmp, prefix="http-prod-") as here:
        master = RedisServer(here).start()
        replica = RedisServer(here, extra=("--replicaof", "127.0.0.1", master.port))
        try:
            replica.start()
            wait_until(lambda: replica.client().info("replication").get("master_link_status") == "up"
                       and master.client().info("replication").get("connected_slaves", 0) >= 1,
                       30, "the replica to be in sync")

            def waits():
                return master.client().info("commandstats").get("cmdstat_wait", {}).get("calls", 0)
            found, waited = http_compare(
                here, {"foodapp WAIT": production_ini(here, "wait", **{"enqueue.replicas": "1"}),
                       "foodapp no WAIT": production_ini(here, "nowait", **{"enqueue.replicas": "0"}),
                       "bare view": production_ini(here, "bare", "call:bench.bare_app:main"),
                       "send() view": production_ini(here, "send", "call:bench.send_app:main")},
                {"FOODAPP_REDIS_URL": master.url}, "production profile, a replica", waits)
        finally:
            replica.stop()
            master.stop()
    if not waited["foodapp WAIT"]:
        raise AssertionError("foodapp's production profile (enqueue.replicas = 1) sent no WAIT to Redis")
    if waited["foodapp no WAIT"]:
        raise AssertionError("foodapp with enqueue.replicas = 0 sent WAIT to Redis")
    wait, nowait, bare, send = (found[n] for n in ("foodapp WAIT", "foodapp no WAIT", "bare view", "send() view"))
    what = f"HTTP enqueue, production profile (replica, WAIT on), req/s ({LOAD_GENERATOR})"
    rows.append(row("http_prod_bare", what, wait[0], "bare Pyramid JSON view, same waitress", bare[0],
                    wait[0] / bare[0], ">= 0.80", wait[0] / bare[0] >= 0.8))
    rows.append(row("http_prod_send", what, wait[0], "a view calling plain Dramatiq send() (no WAIT)", send[0],
                    wait[0] / send[0], ">= 1.0", wait[0] / send[0] >= 1.0))
    rows.append(row("http_prod_wait", what, wait[0], "foodapp, same profile, enqueue.replicas = 0 (no WAIT)",
                    nowait[0], wait[0] / nowait[0], ">= 0.80", wait[0] / nowait[0] >= 0.8))
    rows.append(row("http_prod_nowait_send", "HTTP enqueue, production profile, enqueue.replicas = 0 (no WAIT), req/s",
                    nowait[0], "a view calling plain Dramatiq send() (no WAIT)", send[0], nowait[0] / send[0],
                    "(context: the order without the replica's acknowledgement)", None))
    return rows


# -- batch ----------------------------------------------------------------------------------

def plain_batch(redis_url, seconds, items=BATCH_ITEMS, max_batches=5000):
    """{way: jobs/s} of plain Dramatiq enqueueing ``items``-message batches from one thread,
    one connection, for ``seconds`` each: Dramatiq's ``group(...).run()`` (an enqueue, one
    round trip, per message) and its enqueue pipelined (one round trip per batch)."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.middleware import Prometheus, default_middleware

    broker = RedisBroker(url=redis_url, middleware=[m() for m in default_middleware if m is not Prometheus])

    def comer(item):
        return item
    actor = dramatiq.Actor(comer, broker=broker, actor_name="comer", queue_name="comer", priority=0, options={})
    ways = {
        "group(...).run()": lambda messages: dramatiq.group(messages, broker=broker).run(),
        "its enqueue pipelined (one round trip)": lambda messages: pipelined_enqueue(broker, messages),
    }
    found = {}
    try:
        for way, enqueue in ways.items():
            broker.client.flushdb()
            count, began = 0, time.monotonic()
            while count < max_batches and time.monotonic() - began < seconds:
                enqueue([actor.message(f"plato{i}") for i in range(items)])
                count += 1
            found[way] = count * items / (time.monotonic() - began)
            assert broker.client.llen("dramatiq:comer") == count * items
    finally:
        broker.client.connection_pool.disconnect()
    return found


def batch_rows(tmp, details):
    """POST /menu (foodapp, through waitress) against plain Dramatiq's best 100-message
    enqueue from Python, each on its own redis-server, one connection each, taking turns
    for HTTP_ROUNDS rounds; each one's best round counts."""
    menu = json.dumps([{"comer": f"plato{i}"} for i in range(BATCH_ITEMS)])
    ours, plain = [], {}
    with tempfile.TemporaryDirectory(dir=tmp, prefix="batch-") as here:
        server, other = RedisServer(here).start(), None
        web = None
        try:
            other = RedisServer(here).start()
            web, url = serve(here, ini_for(here, free_port()), {"FOODAPP_REDIS_URL": server.url}, "web")
            script = Path(here) / "menu.lua"
            script.write_text(f"wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\n"
                              f"wrk.body = {json.dumps(menu)}\n")
            if WRK:
                _wrk(f"{url}/menu", 1, 1, "-s", script)  # warm up
            for round_ in range(HTTP_ROUNDS):
                with step(f"batch: foodapp POST /menu ({BATCH_ITEMS} items), one connection, "
                          f"round {round_ + 1}/{HTTP_ROUNDS}") as s:
                    seconds = HTTP_SECONDS / HTTP_ROUNDS
                    if WRK:
                        rps, _ = _wrk(f"{url}/menu", seconds, 1, "-s", script)
                        ours.append(rps * BATCH_ITEMS)
                    else:
                        requests, began = 0, time.monotonic()
                        while requests < 2000 and time.monotonic() - began < seconds:
                            status, _, _ = http("POST", f"{url}/menu", headers={"Content-Type": "application/json"},
                                                body=menu.encode())
                            assert status == 202, status
                            requests += 1
                        ours.append(requests * BATCH_ITEMS / (time.monotonic() - began))
                    s["result"] = f"{ours[-1]:.0f} jobs/s"
                with step(f"batch: plain Dramatiq, {BATCH_ITEMS} messages at a time from Python, one connection, "
                          f"round {round_ + 1}/{HTTP_ROUNDS}") as s:
                    found = plain_batch(other.url, min(HTTP_SECONDS, 5) / HTTP_ROUNDS)
                    for way, value in found.items():
                        plain[way] = max(plain.get(way, 0), value)
                    s["result"] = ", ".join(f"{way}: {v:.0f} jobs/s" for way, v in found.items())
        finally:
            if web is not None:
                web.stop()
            if other is not None:
                other.stop()
            server.stop()
    details["batch_plain"] = {way: round(v, 1) for way, v in plain.items()}
    way = max(plain, key=plain.get)
    return [row("batch", f"batch enqueue: POST /menu ({BATCH_ITEMS} items, one connection), jobs/s", max(ours),
                f"plain Dramatiq's best {BATCH_ITEMS}-message enqueue from Python, one connection: {way}",
                plain[way], max(ours) / plain[way], ">= 3", max(ours) / plain[way] >= 3)]


# -- latency and recovery -----------------------------------------------------------------------

def latency(tmp, kind):
    """Enqueue -> start on an idle worker: one job at a time, after a pause. (p50, p99, max,
    and the p50 of the enqueue alone: the time ``send()`` took to return, in this process)."""
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
                values, sends = [], []
                for _ in range(LATENCY_SAMPLES):
                    time.sleep(0.02 if len(values) % 10 else 1.2)  # idle gaps; every tenth long enough to back off fully
                    began = time.time()
                    probe.send(began)
                    sends.append((time.time() - began) * 1000)
                    # Blocked until the probe records its delay: no polling on the machine
                    # (or on Redis) while the worker picks the job up.
                    taken = client.blpop(["bench:latency"], timeout=4)  # within the client's socket timeout (5 s)
                    if taken is None:
                        raise AssertionError(f"the {kind} worker did not run a probe within 4 s")
                    values.append(float(taken[1]) * 1000)
            finally:
                process.stop()
            values.sort()
            return (statistics.median(values), values[max(0, int(len(values) * 0.99) - 1)], values[-1],
                    statistics.median(sends))
        finally:
            server.stop()


def latency_rows(tmp, details=None):
    from bench import others

    details = {} if details is None else details
    found = {}
    for kind in ("foodapp", "plain"):
        with step(f"latency: enqueue -> start on an idle {kind} worker, {LATENCY_SAMPLES} samples") as s:
            found[kind] = latency(tmp, kind)
            s["result"] = "p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms, send() alone p50 {:.2f} ms".format(*found[kind])
    food_send, plain_send = found["foodapp"][3], found["plain"][3]
    rows = [row(f"pickup_{name}", f"enqueue -> start on an idle worker, {name}, ms", ours,
                "plain Dramatiq (default prefetch; polls with backoff)", theirs,
                theirs / ours if ours else float("inf"), f"<= {limit} ms (ratio: baseline/foodapp)", ours <= limit)
            for name, ours, theirs, limit in zip(("p50", "p99", "max"), found["foodapp"], found["plain"], (1, 5, 25))] + [
        row("pickup_send", "of that p50: the enqueue alone (send() returned, in the sending process), ms", food_send,
            "plain Dramatiq's send(), same pauses", plain_send, plain_send / food_send if food_send else float("inf"),
            "(context; ratio: baseline/foodapp)", None)]
    if not others.SIDEKIQ:
        say("latency: Sidekiq SKIPPED: no `sidekiq` command (apt-get install ruby-sidekiq, or run `make bench` as "
            "root)")
        return rows
    with step(f"latency: enqueue -> start on an idle Sidekiq worker, {LATENCY_SAMPLES} samples") as s:
        sidekiq = others.latency_sidekiq(tmp, LATENCY_SAMPLES)
        s["result"] = "p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms, push alone p50 {:.2f} ms".format(*sidekiq)
    how = (f"Sidekiq {others.sidekiq_version()}, concurrency 1 (BRPOP: the job comes with the wake-up; no start "
           "written), same pauses")
    rows += [
        row(f"pickup_sidekiq_{name}", f"enqueue -> start on an idle worker, {name}, ms (foodapp as above)", ours, how,
            theirs, theirs / ours if ours else float("inf"), "(context; ratio: baseline/foodapp)", None)
        for name, ours, theirs in zip(("p50", "p99"), found["foodapp"], sidekiq)]
    return rows + [pickup_floor_row(sidekiq[0], details)]


def pickup_floor_row(sidekiq_p50, details):
    """The lowest idle pickup foodapp could have here: Sidekiq's (one wake-up, nothing written
    but the job) plus the Redis time of foodapp's enqueue script, which stores the status
    record, timeline and search entries that make a job visible the moment it is accepted.
    Every other part of foodapp's path counts as free in it. Measured stage by stage
    (bench/pickup_stages.py: its stage times go in the details, to read where the rest goes)."""
    from bench import pickup_stages

    with step(f"latency: where foodapp's idle pickup goes, stage by stage, {LATENCY_SAMPLES} samples") as s:
        stages, scripts = pickup_stages.measure(LATENCY_SAMPLES)
        s["result"] = ", ".join(f"{name} {stages[name][0]:.2f}" for name in pickup_stages.STAGES if name in stages) + \
            " ms; Redis µs a call: " + ", ".join(f"{name} {median:.0f}" for name, (median, _) in scripts.items())
    details["pickup_stages_ms"] = {name: round(stages[name][0], 3) for name in pickup_stages.STAGES if name in stages}
    details["pickup_scripts_us"] = {name: round(median) for name, (median, _) in scripts.items()}
    enqueue_ms = scripts["enqueue"][0] / 1000
    floor = sidekiq_p50 + enqueue_ms
    return row("pickup_floor", "idle pickup p50 floor: Sidekiq's p50 + the Redis time of foodapp's enqueue script "
               f"({enqueue_ms * 1000:.0f} µs, SLOWLOG: status record, timeline, search entries), ms; the stages of "
               f"foodapp's own path are in the run's details", floor, "Sidekiq's p50 alone", sidekiq_p50,
               sidekiq_p50 / floor, "(context: above 1 ms, the 1 ms target is out of reach)", None)


def recovery_rows(tmp):
    from bench import recovery

    rows, found = [], {}
    with step("recovery: worker kill -9 -> job running again (foodapp and plain Dramatiq at once)") as s:
        food_kill, plain_kill = recovery.worker_kill(tmp, found)
        s["result"] = f"foodapp {food_kill:.2f} s, plain Dramatiq {plain_kill:.2f} s"
    capped = " (not running again by then: the cap)" if found["plain"]["capped"] else ""
    rows.append(row("worker_kill", "worker kill -9 -> job running again, s", food_kill,
                    f"plain Dramatiq, heartbeat_timeout {recovery.plain_heartbeat_timeout_ms() / 1000:g} s as foodapp's, "
                    f"maintenance (its dead-worker requeue) on every fetch{capped}",
                    plain_kill, plain_kill / food_kill, "<= 15 s (ratio: baseline/foodapp)", food_kill <= 15))
    with step("recovery: master kill -9 -> first accepted enqueue") as s:
        first_202, down_after = recovery.master_kill(tmp, {})
        s["result"] = f"{first_202:.2f} s"
    rows.append(row("master_kill", "master kill -9 -> first accepted enqueue, s", first_202,
                    "Sentinel down-after-milliseconds, s", down_after, down_after / first_202,
                    f"<= down-after + 2 = {down_after + 2:g} s", first_202 <= down_after + 2))
    return rows


# -- the table ------------------------------------------------------------------------------------

def row(key, figure, ours, baseline, theirs, ratio, target, met):
    return {"key": key, "figure": figure, "foodapp": ours, "baseline": baseline, "baseline_value": theirs,
            "ratio": ratio, "target": target, "met": met}


def measure(tmp, steps=STEPS, details=None):
    """Every figure, foodapp and its baseline back to back; returns the table's rows."""
    details = {} if details is None else details
    rows = []
    if "http" in steps:
        rows += http_rows(tmp, details)
    if "drain" in steps or "others" in steps:
        rows += drain_rows(tmp, details=details)
        rows += redis_cost_rows(details)
    if "others" in steps:
        rows += other_rows(tmp, details["foodapp_best_drain"], details)
    if "batch" in steps:
        rows += batch_rows(tmp, details)
    if "latency" in steps:
        rows += latency_rows(tmp, details)
    if "recovery" in steps:
        rows += recovery_rows(tmp)
    return rows


def table(rows):
    marks = {True: "yes", False: "**no**", None: ""}
    lines = ["| figure | foodapp | baseline | baseline value | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['figure']} | {r['foodapp']:.2f} | {r['baseline']} | {r['baseline_value']:.2f} "
              f"| {r['ratio']:.2f} | {r['target']} | {marks[r['met']]} |" for r in rows]
    return "\n".join(lines)


def machine_description(seconds):
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "processor": platform.processor(), "load_generator": LOAD_GENERATOR, "seconds": round(seconds, 1),
            "load_average": [round(v, 2) for v in os.getloadavg()]}


def record(rows, machine, details, results=RESULTS, doc=DOC):
    """latest.json, a line of history.jsonl, ratios.svg and, when ``doc``, docs/bench.md's table."""
    results.mkdir(parents=True, exist_ok=True)
    (results / "latest.json").write_text(json.dumps({"machine": machine, "details": details, "rows": rows},
                                                    indent=2) + "\n")
    entry = history.append(results / "history.jsonl", rows, machine, details)
    history.write_svg(results / "ratios.svg", history.load(results / "history.jsonl"))
    if doc is not None:
        text = doc.read_text()
        start, end = text.index("<!-- table -->"), text.index("<!-- /table -->")
        sweep = details.get("drain_sweep", {})
        notes = "".join(f"\n- drain sweep, {kind}, jobs/s by prefetch: "
                        + ", ".join(f"{p} {v:.0f}" for p, v in values.items()) for kind, values in sweep.items())
        for kind, tries in details.get("drain_scaling", {}).items():
            notes += f"\n- drain scaling, {kind}, jobs/s by round: " + "; ".join(
                f"{processes} " + ", ".join(f"{v:.0f}" for v in values) for processes, values in tries.items()
                if processes != "cores")
        for name in ("rq", "celery", "batch_plain", "sidekiq"):
            if isinstance(details.get(name), dict):
                notes += f"\n- {name}: " + ", ".join(f"{k} {v:.0f}" for k, v in details[name].items())
        if isinstance(details.get("sidekiq"), str):
            notes += f"\n- sidekiq: {details['sidekiq']}"
        load = ", ".join(f"{v:g}" for v in machine.get("load_average", []))
        doc.write_text(text[:start] + "<!-- table -->\n" + table(rows) +
                       f"\n\nEvery baseline's tries in this run (the table shows each at its best):\n{notes}\n\n"
                       f"Measured on {machine['platform']}, {machine['cpus']} cores, Python {machine['python']}, "
                       f"load generator {LOAD_GENERATOR}, in {machine['seconds']} s, commit "
                       f"{entry['commit'][:10]}{' with uncommitted changes' if entry['dirty'] else ''}, "
                       f"load average at the end {load}.\n" + text[end:])
    return entry


def main():
    only = [s.strip() for s in os.environ.get("BENCH_ONLY", "").split(",") if s.strip()]
    unknown = set(only) - set(STEPS)
    if unknown:
        raise SystemExit(f"BENCH_ONLY: unknown steps {sorted(unknown)}; steps are {', '.join(STEPS)}")
    steps = only or STEPS
    tmp = tempfile.mkdtemp(prefix="foodapp-bench-")
    began = time.monotonic()
    details = {}
    say(f"steps: {', '.join(steps)}; drain {DRAIN_JOBS} jobs (prefetch {', '.join(prefetch_name(p) for p in PREFETCHES)}), "
        f"RQ and Celery {OTHER_DRAIN_JOBS} jobs, HTTP {HTTP_SECONDS:g} s per figure, {LATENCY_SAMPLES} pickups")
    try:
        rows = measure(tmp, steps, details)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(table(rows), flush=True)
    machine = machine_description(time.monotonic() - began)
    if only and os.environ.get("BENCH_RECORD") != "1":
        say("BENCH_ONLY: partial run, not recorded (BENCH_RECORD=1 to record it)")
        return
    entry = record(rows, machine, details, doc=DOC if not only else None)
    say(f"recorded: bench/results/latest.json, history.jsonl ({entry['timestamp']}), ratios.svg"
        + ("" if only else ", docs/bench.md"))


if __name__ == "__main__":
    main()
