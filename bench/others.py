"""Worker-drain baselines from other job queues on Redis: RQ and Celery.

    drain_rq(tmp, jobs) -> jobs/s       drain_celery(tmp, jobs) -> jobs/s

Both measure what ``bench.run.drain`` measures for Dramatiq: ``jobs`` no-op jobs are
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

Try it: ``.venv/bin/python -m bench.others 2000``.
"""
import fcntl
import json
import os
import shutil
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
REQUIREMENTS = {
    "rq": ["rq>=3,<4"],
    "celery": ["celery[redis]>=5.5,<6"],
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


def _timed_drain(name, client, queue_key, jobs, worker):
    """Seconds from the first job taken (LLEN queue_key < jobs) to COUNTER == jobs."""
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

    wait_until(started, 120, f"the {name} worker to take its first job (LLEN {queue_key} < {jobs})", interval=0.001)
    began = time.monotonic()
    wait_until(finished, _deadline(jobs), f"the {name} worker to finish {jobs} jobs ({COUNTER} == {jobs})",
               interval=0.02)
    return time.monotonic() - began


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
            argv = [bin_dir / worker_argv[0], *(a.replace("{url}", server.url) for a in worker_argv[1:])]
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


def drain_rq(tmp: str, jobs: int) -> float:
    """RQ: one ``rq worker --burst`` process with SimpleWorker (runs each job in-process,
    no fork per job; one job at a time), draining ``jobs`` no-op jobs; jobs/s.

    RQ 3 spends some 27 Redis round trips on each job (registries, execution records,
    heartbeats), which is most of its time here."""
    return _drain(tmp, "rq", jobs, "bench.rq_jobs", "rq:queue:bench",
                  ["rq", "worker", "--worker-class", "rq.worker.SimpleWorker", "--burst", "--quiet",
                   "--url", "{url}", "bench"])


def drain_celery(tmp: str, jobs: int) -> float:
    """Celery: one worker with the prefork pool, ``--concurrency 4`` (4 child processes;
    the Dramatiq baseline in bench/run.py is 1 process x 4 threads), default prefetch
    multiplier, no result backend, no gossip/mingle/heartbeat; jobs/s."""
    return _drain(tmp, "celery", jobs, "bench.celery_app", "bench",
                  ["celery", "-A", "bench.celery_app", "worker", "--pool", "prefork",
                   "--concurrency", str(CELERY_CONCURRENCY), "--without-gossip", "--without-mingle",
                   "--without-heartbeat", "--loglevel", "WARNING", "--queues", "bench"])


def main(argv):
    jobs = int(argv[0]) if argv else 2000
    tmp = tempfile.mkdtemp(prefix="foodapp-bench-others-")
    try:
        for name, fn in (("rq", drain_rq), ("celery", drain_celery)):
            rate = fn(tmp, jobs)
            print(f"{name}: {rate:.0f} jobs/s draining {jobs} no-op jobs "
                  f"({', '.join(f'{k} {v}' for k, v in versions(name).items())})", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
