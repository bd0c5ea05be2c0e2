"""Worker-drain baselines from other job queues on Redis: RQ, Celery and Sidekiq.

    drain_rq(tmp, jobs, workers) -> jobs/s
    drain_celery(tmp, jobs, concurrency, multiplier) -> jobs/s
    drain_sidekiq(tmp, jobs, concurrency, cpu) -> jobs/s
    latency_sidekiq(tmp, samples)          -> (p50, p99, max, push p50) ms, enqueue -> start

The drains measure what ``bench.run.drain`` measures for Dramatiq: ``jobs`` no-op jobs are
enqueued first, on a private redis-server started here (127.0.0.1, a free port, never
6379); then the worker is started, and the clock runs from the first job taken (the
queue's length drops below ``jobs``) to the last one finished. Worker start-up is not timed.

Each no-op job does one thing: INCR of a counter in Redis, so "finished" is exact
(counter == jobs) and the same for both. That is one round trip per job more than the
Dramatiq ``noop`` actor does (it returns None), a small cost beside the several round trips
each of these queues spends per job; results are not stored by either (RQ
``result_ttl=0``, Celery ``ignore_result=True`` and no result backend), as with Dramatiq
without a results middleware. Per-job logging is off in both (RQ ``--quiet``, Celery
``--loglevel WARNING``), as Dramatiq's worker logs nothing per job.

RQ and Celery need redis-py >= 5, which foodapp's venv (redis<5) cannot hold, so each runs
from its own virtualenv under var/bench-venvs/ (gitignored), created on first use and kept
(a marker file names what was installed). Jobs are enqueued by a small script run with that
venv's python (bench/rq_jobs.py, bench/celery_app.py); progress is polled from here with
our redis-py.

Sidekiq is Ruby: Debian's ruby-sidekiq package (`make bench` installs it when root), its
jobs in bench/sidekiq_jobs.rb.

Try it: ``.venv/bin/python -m bench.others 2000``.
"""
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.servers import Process, RedisServer, wait_until  # noqa: E402

VENVS = ROOT / "var" / "bench-venvs"
COUNTER = "bench:done"  # the no-op jobs INCR this key (see bench/rq_jobs.py, bench/celery_app.py)
# hiredis in each, as in foodapp's (redis-py packs and parses in C with it): every baseline
# as its users would run it at its best.
REQUIREMENTS = {
    "rq": ["rq>=3,<4", "hiredis>=3"],
    "celery": ["celery[redis]>=5.5,<6", "hiredis>=3"],
}
INSTALL_SECONDS = 900
CELERY_CONCURRENCY = 4


def _base_python():
    """The interpreter our venv was made from (a venv's own python would chain venvs)."""
    for candidate in (getattr(sys, "_base_executable", None), shutil.which("python3.11")):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("no python3.11 to create the bench venvs with")


def venv(name):
    """bin/ of var/bench-venvs/NAME, created and installed once (idempotent, locked)."""
    requirements = REQUIREMENTS[name]
    home = VENVS / name
    marker = home / ".installed"
    wanted = "\n".join(requirements) + "\n"
    VENVS.mkdir(parents=True, exist_ok=True)
    with open(VENVS / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two benches at once: one installs, the other waits
        if marker.exists() and marker.read_text() == wanted and (home / "bin" / "python").exists():
            return home / "bin"
        print(f"bench: installing {' '.join(requirements)} into {home.relative_to(ROOT)} (once)", flush=True)
        began = time.monotonic()
        steps = [[_base_python(), "-m", "venv", "--clear", str(home)],
                 [str(home / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                  *requirements]]
        for argv in steps:
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=INSTALL_SECONDS)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"timed out after {INSTALL_SECONDS} s: {' '.join(argv)}") from None
            if done.returncode:
                raise RuntimeError(f"failed ({done.returncode}): {' '.join(argv)}\n{done.stdout}{done.stderr}")
        marker.write_text(wanted)
        print(f"bench: {name} venv ready in {time.monotonic() - began:.0f} s", flush=True)
        return home / "bin"


def versions(name):
    """{distribution: version} of what var/bench-venvs/NAME runs, for the table's footnote."""
    wanted = {"rq": ("rq", "redis"), "celery": ("celery", "kombu", "redis")}[name]
    code = ("import importlib.metadata as m, json, sys; "
            "print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))")
    out = subprocess.run([str(venv(name) / "python"), "-c", code, *wanted], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return json.loads(out)


def _deadline(jobs):
    """Seconds allowed for a drain of ``jobs`` (>= 33 jobs/s; RQ's SimpleWorker does ~10x that)."""
    return 60 + jobs * 0.03


def _enqueue(bin_dir, module, redis_url, jobs, log):
    """Enqueue with the other venv's python: ``python -m MODULE enqueue JOBS``."""
    argv = [str(bin_dir / "python"), "-m", module, "enqueue", str(jobs)]
    timeout = 60 + jobs * 0.01
    with open(log, "ab") as out:
        try:
            subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, timeout=timeout, check=True,
                           env={**os.environ, "BENCH_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT)})
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"timed out after {timeout:.0f} s enqueueing {jobs} jobs with {module}:\n"
                               f"{Path(log).read_text()[-4000:]}") from None
        except subprocess.CalledProcessError as error:
            raise RuntimeError(f"enqueueing with {module} failed ({error.returncode}):\n"
                               f"{Path(log).read_text()[-4000:]}") from None


def _timed_drain(name, client, queue_key, jobs, worker, cpu=None, pids=None):
    """Seconds from the first job taken (LLEN queue_key < jobs) to COUNTER == jobs; with
    ``cpu`` (a dict), also the CPU µs a job the processes ``pids`` ({name: [pid, ...]}) used
    over those seconds."""
    def alive_or_fail(what):
        if not worker.alive() and int(client.get(COUNTER) or 0) < jobs:
            raise RuntimeError(f"the {name} worker exited while {what} "
                               f"({int(client.get(COUNTER) or 0)}/{jobs} done):\n{worker.output()[-4000:]}")

    def started():
        alive_or_fail("starting")
        return client.llen(queue_key) < jobs

    def finished():
        done = int(client.get(COUNTER) or 0)
        if done < jobs:
            alive_or_fail("draining")
        return done >= jobs

    from bench.run import cpu_seconds

    wait_until(started, 120, f"the {name} worker to take its first job (LLEN {queue_key} < {jobs})", interval=0.001)
    began = time.monotonic()
    pids = pids or {}
    used = {part: cpu_seconds(ids) for part, ids in pids.items()}
    wait_until(finished, _deadline(jobs), f"the {name} worker to finish {jobs} jobs ({COUNTER} == {jobs})",
               interval=0.02)
    seconds = time.monotonic() - began
    if cpu is not None:
        cpu.update({part: (cpu_seconds(pids[part]) - used[part]) / jobs * 1e6 for part in pids})
    return seconds


def _drain(tmp, name, jobs, module, queue_key, worker_argv):
    bin_dir = venv(name)
    with tempfile.TemporaryDirectory(dir=tmp, prefix=f"{name}-") as here:
        server = RedisServer(here).start()
        try:
            client = server.client()
            _enqueue(bin_dir, module, server.url, jobs, Path(here) / "enqueue.log")
            queued = client.llen(queue_key)
            if queued != jobs:
                raise RuntimeError(f"{module} enqueued {queued} jobs on {queue_key}, not {jobs}")
            program = worker_argv[0] if worker_argv[0].startswith("/") else bin_dir / worker_argv[0]
            argv = [program, *(a.replace("{url}", server.url).replace("{bin}", str(bin_dir)) for a in worker_argv[1:])]
            worker = Process(argv, Path(here) / "worker.log",
                             env={"BENCH_REDIS_URL": server.url, "PYTHONPATH": str(ROOT)}).start()
            try:
                seconds = _timed_drain(name, client, queue_key, jobs, worker)
            finally:
                worker.stop()
            done = int(client.get(COUNTER) or 0)
            if done != jobs:
                raise RuntimeError(f"the {name} worker ran {done} jobs, not {jobs}")
            return jobs / seconds
        finally:
            server.stop()


#: How RQ's workers run: RQ's own pool, or that many separate `rq worker --burst` processes.
RQ_WAYS = ("worker-pool", "processes")


def drain_rq(tmp: str, jobs: int, workers: int = 4, way: str = "processes") -> float:
    """RQ at its best for short jobs: ``workers`` worker processes (as many as foodapp has
    threads; RQ runs one job at a time per process), each a SimpleWorker (runs its jobs in
    its own process: no fork per job, which the default Worker class does), ``--burst``,
    draining ``jobs`` no-op jobs; jobs/s. ``way`` "worker-pool" is RQ's own
    ``rq worker-pool --num-workers``; "processes" is that many ``rq worker`` commands.

    RQ 3 spends some 27 Redis round trips on each job (registries, execution records,
    heartbeats), which is most of its time here."""
    options = ["--worker-class", "rq.worker.SimpleWorker", "--burst", "--quiet", "--url", "{url}", "bench"]
    if way == "worker-pool":
        argv = ["rq", "worker-pool", "--num-workers", str(workers), *options]
    else:
        one = " ".join(["{bin}/rq", "worker", *options])
        argv = ["/bin/sh", "-c", f"for i in $(seq {int(workers)}); do {one} & done; wait"]
    return _drain(tmp, "rq", jobs, "bench.rq_jobs", "rq:queue:bench", argv)


def rq_how(way, workers=4):
    version = versions("rq").get("rq", "")
    if way == "worker-pool":
        return f"RQ {version} `rq worker-pool -n {workers}` (SimpleWorker)"
    return f"RQ {version}, {workers} `rq worker --burst` processes (SimpleWorker)"


def drain_celery(tmp: str, jobs: int, concurrency: int = CELERY_CONCURRENCY, multiplier: int = 4) -> float:
    """Celery: one worker with the prefork pool, ``--concurrency`` child processes (as many as
    foodapp has threads), ``--prefetch-multiplier`` (messages each child may reserve; Celery's
    default is 4, larger is what its docs advise for many short tasks), no result backend, no
    gossip/mingle/heartbeat; jobs/s."""
    return _drain(tmp, "celery", jobs, "bench.celery_app", "bench",
                  ["celery", "-A", "bench.celery_app", "worker", "--pool", "prefork",
                   "--concurrency", str(concurrency), "--prefetch-multiplier", str(multiplier),
                   "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING",
                   "--queues", "bench"])


def celery_how(concurrency=CELERY_CONCURRENCY):
    return f"Celery {versions('celery').get('celery', '')} prefork, concurrency {concurrency}"


# -- Sidekiq (Debian's ruby-sidekiq) ---------------------------------------------------------

SIDEKIQ = shutil.which("sidekiq")
SIDEKIQ_JOBS = ROOT / "bench" / "sidekiq_jobs.rb"


def sidekiq_version():
    out = subprocess.run(["ruby", "-e", "require 'sidekiq'; print Sidekiq::VERSION"], capture_output=True,
                         text=True, timeout=60)
    return out.stdout.strip() or "?"


def drain_sidekiq(tmp: str, jobs: int, concurrency: int = 4, cpu: dict = None) -> float:
    """Sidekiq (Debian's ruby-sidekiq, 6.4): ``jobs`` no-op jobs pushed first with
    ``Sidekiq::Client.push_bulk`` (bench/sidekiq_jobs.rb), then one ``sidekiq`` process with
    ``-c CONCURRENCY`` threads drains them; jobs/s from the first job taken to the last one
    finished. Its no-op job counts itself in memory and adds to bench:done once per 100 jobs
    (and at the last one): about no Redis work of its own, like Dramatiq's no-op. Sidekiq's
    per-job log lines are off (logger level WARN), as Dramatiq logs nothing per job.
    ``cpu``, if given, gets the CPU µs a job of the sidekiq process and of redis-server."""
    if not SIDEKIQ:
        raise RuntimeError("sidekiq is not installed (apt-get install ruby-sidekiq, or `make bench` as root)")
    with tempfile.TemporaryDirectory(dir=tmp, prefix="sidekiq-") as here:
        server = RedisServer(here).start()
        try:
            client = server.client()
            env = {**os.environ, "REDIS_URL": server.url}
            log = Path(here) / "enqueue.log"
            with open(log, "ab") as out:
                subprocess.run(["ruby", str(SIDEKIQ_JOBS), "enqueue", str(jobs)], stdout=out, stderr=subprocess.STDOUT,
                               cwd=ROOT, env=env, timeout=60 + jobs * 0.01, check=True)
            queued = client.llen("queue:bench")
            if queued != jobs:
                raise RuntimeError(f"sidekiq_jobs.rb enqueued {queued} jobs on queue:bench, not {jobs}:\n"
                                   f"{log.read_text()[-3000:]}")
            worker = Process([SIDEKIQ, "-r", SIDEKIQ_JOBS, "-c", concurrency, "-q", "bench", "-t", "5",
                              "-e", "production"], Path(here) / "worker.log", env={"REDIS_URL": server.url}).start()
            try:
                seconds = _timed_drain("sidekiq", client, "queue:bench", jobs, worker, cpu,
                                       {"worker": [worker.pid], "redis": [server.pid]})
            finally:
                worker.stop()
            done = int(client.get(COUNTER) or 0)
            if done != jobs:
                raise RuntimeError(f"sidekiq ran {done} jobs, not {jobs}")
            return jobs / seconds
        finally:
            server.stop()


def latency_sidekiq(tmp: str, samples: int, concurrency: int = 1) -> tuple:
    """Enqueue -> start on an idle Sidekiq worker (``sidekiq -c CONCURRENCY``), measured as
    bench/run.py's ``latency`` measures Dramatiq's: one probe at a time after the same pauses,
    from just before the push (Sidekiq's own client, in Ruby) to the job's first line. Sidekiq
    blocks on its queue with BRPOP, so the job comes with the wake-up. (p50, p99, max, and the
    p50 of the push alone), in ms."""
    if not SIDEKIQ:
        raise RuntimeError("sidekiq is not installed (apt-get install ruby-sidekiq, or `make bench` as root)")
    with tempfile.TemporaryDirectory(dir=tmp, prefix="sidekiq-") as here:
        server = RedisServer(here).start()
        try:
            worker = Process([SIDEKIQ, "-r", SIDEKIQ_JOBS, "-c", concurrency, "-q", "bench", "-t", "5",
                              "-e", "production"], Path(here) / "worker.log", env={"REDIS_URL": server.url}).start()
            try:
                probed = subprocess.run(["ruby", str(SIDEKIQ_JOBS), "probe", str(samples)], capture_output=True,
                                        text=True, cwd=ROOT, env={**os.environ, "REDIS_URL": server.url},
                                        timeout=120 + samples * 4)
            finally:
                worker.stop()
            if probed.returncode != 0:
                raise RuntimeError(f"sidekiq_jobs.rb probe failed: {probed.stderr[-2000:]}\n{worker.output()[-2000:]}")
            found = json.loads(probed.stdout)
            delays = sorted(found["delays_ms"])
            return (statistics.median(delays), delays[max(0, int(len(delays) * 0.99) - 1)], delays[-1],
                    statistics.median(found["sends_ms"]))
        finally:
            server.stop()


def main(argv):
    jobs = int(argv[0]) if argv else 2000
    tmp = tempfile.mkdtemp(prefix="foodapp-bench-others-")
    try:
        for way in RQ_WAYS:
            print(f"{rq_how(way)}: {drain_rq(tmp, jobs, way=way):.0f} jobs/s draining {jobs} no-op jobs", flush=True)
        for multiplier in (1, 4, 16):
            print(f"{celery_how()}, prefetch multiplier {multiplier}: {drain_celery(tmp, jobs, multiplier=multiplier):.0f}"
                  " jobs/s", flush=True)
        if SIDEKIQ:
            print(f"Sidekiq {sidekiq_version()}, concurrency 4: {drain_sidekiq(tmp, jobs):.0f} jobs/s", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
