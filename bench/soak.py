"""`make soak`: a bounded mixed load for a set time, with random worker kill -9s.

    python -m bench.soak --seconds 300 [--workers 3] [--seed 1234]

A private redis-server (a free port, never 6379) and one host of production (supervisord
running supervisor/production.conf, shrunk: two web processes, ``--workers`` queue workers,
one batch worker; see tests/hosts.py). For ``--seconds`` a few client threads send to
127.0.0.1 single orders (/comer, /beber), menus (POST /menu, 20 items) and reports (POST
/reports), paced to ``--rate`` requests a second, each with its own Idempotency-Key (a
request whose answer was lost is sent again with the same key). Meanwhile, at random
intervals (seeded; the seed is printed), a random worker process gets SIGKILL;
supervisord starts it again. One worker (workers_00) and the web processes are never
killed, so their memory is compared like with like.

At the end, once every accepted job is finished (bounded wait), it checks:

- every accepted comer/beber job (a 202, or a stored Idempotency-Key whose answer was lost)
  has exactly one ledger entry, with its queue and item; the ledger has no other entry, and
  its totals match the accepted orders item by item;
- no job is stuck: every accepted job (reports too) is ``done``; no queue, delay queue,
  dead-letter queue, message hash or worker's ack set holds anything;
- every accepted job started (its timeline's ``started`` events) at most once more than the
  crashes its status counts: only a job a killed worker was running may run again;
- the status API agrees for a sample of jobs and menus;
- RSS of the never-killed processes, after warm-up and at the end: printed; only gross
  growth (more than 50 % and more than 30 MB) fails ``make soak``.

It prints a summary and exits non-zero when a guarantee failed. tests/test_soak.py runs a
short one through the same functions (``soak(...)``).
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.client import HTTPException
from urllib.parse import quote
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.hosts import Host  # noqa: E402
from tests.runs import read_runs, report, rerun  # noqa: E402
from tests.servers import RedisServer, http, wait_until  # noqa: E402

FOODS = ("pimiento", "pepino", "tomate", "salmon", "zanahoria", "platano", "paella", "jamón")
DRINKS = ("rioja", "martini", "ronmiel", "whisky", "agua", "café")
QUEUES = ("comer", "beber", "batch")
TERMINAL = ("done", "failed", "dead")
#: Programs never killed: their RSS is compared with itself (a killed worker has a new pid).
PROTECTED = ("web:web_0", "web:web_1", "workers:workers_00")


@dataclass
class Config:
    seconds: float = 300
    workers: int = 3            # queue workers (comer, beber); workers_00 is never killed
    batch: int = 1              # batch workers (reports)
    threads: int = 2            # threads per worker process
    clients: int = 3            # client threads
    rate: float = 12.0          # requests a second, all clients together
    menu_size: int = 20         # items per POST /menu
    mix: tuple = (("order", 0.75), ("menu", 0.2), ("report", 0.05))
    kill_every: tuple = (2.0, 8.0)   # seconds between two kills, uniformly at random
    warmup: float = None        # seconds before the RSS baseline; default min(30, seconds / 4)
    preparation_seconds: float = 0.05
    drain_timeout: float = None  # default max(180, seconds)
    seed: int = None
    request_timeout: float = 15
    attempts: int = 4           # sends of one request (same Idempotency-Key) before giving up
    rss_sample_every: float = 2.0
    rss_max_percent: float = 50
    rss_max_mb: float = 30

    def __post_init__(self):
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(1, 2**31)
        if self.warmup is None:
            self.warmup = min(30.0, self.seconds / 4)
        if self.drain_timeout is None:
            self.drain_timeout = max(180.0, self.seconds)


# --------------------------------------------------------------------------------------
# Processes: which program a pid belongs to, RSS, the worker processes to kill.

def _proc_table():
    """{pid: (ppid, cmdline)} of every live process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        table[int(entry)] = (ppid, cmdline)
    return table


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    except (OSError, AttributeError):
        return None


def host_processes(host):
    """[(program, role, pid)] of a host, read from /proc (no supervisorctl, so cheap).

    role is "web" (a waitress process), "main" (Dramatiq's main process, the one
    supervisord started) or "worker" (the Dramatiq worker process it forked, which runs the
    jobs).
    """
    table = _proc_table()
    supervisord = host.process.pid
    found = []
    for pid, (ppid, cmdline) in table.items():
        if ppid != supervisord:
            continue
        web = re.search(r"--port (\d+)", cmdline)
        worker = re.search(r"var/run/((?:workers|batch)_\d+)\.pid", cmdline)
        if web and int(web.group(1)) in host.web_ports:
            found.append((f"web:web_{host.web_ports.index(int(web.group(1)))}", "web", pid))
        elif worker:
            program = f"{worker.group(1).rsplit('_', 1)[0]}:{worker.group(1)}"
            found.append((program, "main", pid))
            found += [(program, "worker", child) for child, (parent, _) in table.items() if parent == pid]
    return sorted(found)


class RssMonitor:
    """Samples the RSS of every process of the host every few seconds, per (program, role, pid)."""

    def __init__(self, host, every):
        self.host, self.every = host, every
        self.samples = defaultdict(list)   # (program, role, pid) -> [(monotonic, kB)]
        self.last = set()                  # the processes seen in the latest sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-rss", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def sample(self):
        now = time.monotonic()
        seen = set()
        for program, role, pid in host_processes(self.host):
            kb = rss_kb(pid)
            if kb:
                self.samples[(program, role, pid)].append((now, kb))
                seen.add((program, role, pid))
        self.last = seen

    def _run(self):
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as error:  # a sample must never end the soak
                print(f"rss sample failed: {error!r}", flush=True)
            self._stop.wait(self.every)

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        self.sample()

    def growth(self, baseline_after):
        """[(program, role, pid, baseline MB, end MB, max MB, protected, original)] for each web and
        worker process alive at the end and sampled after ``baseline_after``; the baseline is
        its first sample from then on (a worker restarted later is compared with its own
        first sample). Dramatiq's main processes (a few MB, no jobs) are left out."""
        rows = []
        for (program, role, pid), samples in sorted(self.samples.items()):
            if role == "main" or (program, role, pid) not in self.last:
                continue
            after = [kb for t, kb in samples if t >= baseline_after]
            if len(after) < 2:
                continue
            original = samples[0][0] < baseline_after   # else started after a kill
            rows.append((program, role, pid, after[0] / 1024, after[-1] / 1024, max(after) / 1024,
                         program in PROTECTED and original, original))
        return rows


def kill_a_worker(host, rng):
    """SIGKILL one Dramatiq worker process (never workers_00's); (program, pid) or None."""
    candidates = [(program, pid) for program, role, pid in host_processes(host)
                  if role == "worker" and program not in PROTECTED]
    if not candidates:
        return None
    program, pid = rng.choice(candidates)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return None
    return program, pid


# --------------------------------------------------------------------------------------
# The load: what was sent, what was accepted.

@dataclass
class Accepted:
    """Everything the clients learned, shared between their threads."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    jobs: dict = field(default_factory=dict)        # job_id -> (queue, item or None)
    batches: list = field(default_factory=list)     # batch ids of accepted menus
    requests: Counter = field(default_factory=Counter)   # kind -> requests answered 202
    answers: Counter = field(default_factory=Counter)    # "kind status" -> count, every send
    replayed: int = 0                                # 202s with Idempotent-Replayed
    resent: int = 0                                  # sends after a lost answer or a 503
    unexpected: list = field(default_factory=list)   # (kind, status, body) of other answers
    unresolved: list = field(default_factory=list)   # (kind, key): no answer after every attempt

    def add(self, kind, body):
        entries = body["jobs"] if kind == "menu" else [body]
        with self.lock:
            self.requests[kind] += 1
            for entry in entries:
                self.jobs[entry["job_id"]] = (entry["queue"], entry.get("item"))
            if kind == "menu":
                self.batches.append(body["batch_id"])


def request_for(kind, rng, menu_size):
    """(method, path, headers, body) of one random request of ``kind``."""
    if kind == "order":
        queue = rng.choice(("comer", "beber"))
        item = rng.choice(FOODS if queue == "comer" else DRINKS)
        return rng.choice(("GET", "POST")), f"/{queue}/{quote(item, safe='')}", {}, None
    if kind == "menu":
        items = [{"comer": rng.choice(FOODS)} if rng.random() < 0.5 else {"beber": rng.choice(DRINKS)}
                 for _ in range(menu_size)]
        return "POST", "/menu", {"Content-Type": "application/json"}, json.dumps(items).encode()
    return "POST", "/reports", {}, None


def send(urls, kind, request, accepted, config, rng, stop):
    """Send one request until it is answered (same Idempotency-Key each time), bounded."""
    method, path, headers, body = request
    key = str(uuid.uuid4())
    headers = {**headers, "Idempotency-Key": key}
    for attempt in range(config.attempts):
        if attempt:
            with accepted.lock:
                accepted.resent += 1
        url = rng.choice(urls)
        try:
            status, answer_headers, answer = http(method, url + path, timeout=config.request_timeout,
                                                  headers=headers, body=body)
        except (OSError, HTTPException) as error:  # no answer: it may or may not be stored
            with accepted.lock:
                accepted.answers[f"{kind} {type(error).__name__}"] += 1
            stop.wait(0.5 * (attempt + 1))
            continue
        with accepted.lock:
            accepted.answers[f"{kind} {status}"] += 1
        if status == 202:
            if answer_headers.get("Idempotent-Replayed") == "true":
                with accepted.lock:
                    accepted.replayed += 1
            accepted.add(kind, answer)
            return True
        if status == 503:   # nothing stored; try again after Retry-After
            stop.wait(min(float(answer_headers.get("Retry-After", 1)), 5))
            continue
        with accepted.lock:
            accepted.unexpected.append((kind, status, str(answer)[:500]))
        return False
    with accepted.lock:
        accepted.unresolved.append((kind, key))
    return False


def client_loop(number, urls, config, accepted, stop, deadline):
    """One client thread: paced requests of the configured mix until the deadline; bounded."""
    rng = random.Random(f"{config.seed}-client-{number}")
    kinds, weights = zip(*config.mix)
    interval = config.clients / config.rate
    next_at = time.monotonic() + rng.random() * interval
    max_requests = int(config.seconds * config.rate / config.clients * 2) + 10
    for _ in range(max_requests):
        if stop.is_set() or time.monotonic() >= deadline:
            return
        kind = rng.choices(kinds, weights)[0]
        try:
            send(urls, kind, request_for(kind, rng, config.menu_size), accepted, config, rng, stop)
        except Exception as error:  # a bug here must show in the result, not end a thread quietly
            with accepted.lock:
                accepted.unexpected.append((kind, "client error", repr(error)))
        # Pacing, not a wait for a condition: the load is bounded in rate as well as time.
        next_at += interval
        stop.wait(max(0.0, min(next_at, deadline) - time.monotonic()))


def killer_loop(host, config, kills, stop, deadline):
    """kill -9 a random worker process at random intervals until the deadline; bounded."""
    rng = random.Random(f"{config.seed}-killer")
    low, high = config.kill_every
    for _ in range(int(config.seconds / low) + 1):
        if stop.wait(rng.uniform(low, high)) or time.monotonic() >= deadline:
            return
        killed = kill_a_worker(host, rng)
        if killed:
            kills.append((time.monotonic(), *killed))


# --------------------------------------------------------------------------------------
# The end: resolve lost answers, wait for the jobs, check the guarantees.

def resolve_unresolved(client, accepted):
    """Requests never answered: their Idempotency-Key in Redis says whether they were stored."""
    stored = 0
    for kind, key in accepted.unresolved:
        raw = client.get(f"foodapp:idempotency:{key}")
        if raw is not None:
            accepted.add(kind, json.loads(raw.decode().split("\n", 1)[1]))
            stored += 1
    return stored


def job_states(client, job_ids):
    """{job_id: state or None} read straight from Redis, in pipelined chunks."""
    states = {}
    job_ids = list(job_ids)
    for start in range(0, len(job_ids), 1000):
        chunk = job_ids[start:start + 1000]
        with client.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.hget(f"foodapp:job:{job_id}", "state")
            for job_id, state in zip(chunk, pipe.execute()):
                states[job_id] = state.decode() if state else None
    return states


def leftovers(client):
    """What Redis still holds in queues and workers' hands: {key: count}, only non-empty."""
    found = {}
    for queue in QUEUES:
        for name, size in ((f"dramatiq:{queue}", client.llen), (f"dramatiq:{queue}.msgs", client.hlen),
                           (f"dramatiq:{queue}.DQ", client.llen), (f"dramatiq:{queue}.DQ.msgs", client.hlen),
                           (f"dramatiq:{queue}.XQ", client.zcard)):
            count = size(name)
            if count:
                found[name] = count
    for key in client.scan_iter(match="dramatiq:__acks__.*", count=1000):
        count = client.scard(key)
        if count:
            found[key.decode()] = count
    return found


def wait_drained(client, accepted, timeout, log=print):
    """Wait until every accepted job is finished and Redis holds nothing; (seconds, states)."""
    began = time.monotonic()
    last_print = [began]

    def drained():
        states = job_states(client, accepted.jobs)
        pending = Counter(state for state in states.values() if state not in TERMINAL)
        held = leftovers(client) if not pending else {"(not looked at yet)": 1}
        if time.monotonic() - last_print[0] > 10:
            last_print[0] = time.monotonic()
            log(f"  draining: {sum(pending.values())} jobs not finished {dict(pending)}; Redis holds {held}")
        return (not pending and not held) and states
    try:
        states = wait_until(drained, timeout, "every accepted job to finish and the queues to empty", interval=0.5)
    except AssertionError:
        states = None
    return time.monotonic() - began, states


def check(client, urls, accepted, states, rng):
    """The guarantees, as a list of failures (empty: all held) and some figures."""
    failures = []
    figures = {}
    if states is None:
        states = job_states(client, accepted.jobs)
    not_done = {job_id: state for job_id, state in states.items() if state != "done"}
    if not_done:
        sample = dict(list(not_done.items())[:20])
        failures.append(f"{len(not_done)} accepted job(s) not done (stuck or lost): "
                        f"{dict(Counter(not_done.values()))}; e.g. {sample}")
    held = leftovers(client)
    if held:
        failures.append(f"Redis still holds jobs in queues or workers' hands: {held}")

    # The ledger: exactly one entry per accepted order, none for anything else.
    ledger = {key.decode(): json.loads(value) for key, value in client.hgetall("foodapp:ledger").items()}
    orders = {job_id: spec for job_id, spec in accepted.jobs.items() if spec[0] in ("comer", "beber")}
    missing = sorted(set(orders) - set(ledger))
    extra = sorted(set(ledger) - set(orders))
    if missing:
        failures.append(f"{len(missing)} accepted order(s) have no ledger entry: {missing[:20]}")
    if extra:
        failures.append(f"{len(extra)} ledger entr(ies) for jobs never accepted: "
                        f"{[(job_id, ledger[job_id]) for job_id in extra[:10]]}")
    wrong = [(job_id, orders[job_id], (entry.get("queue"), entry.get("item")))
             for job_id, entry in ledger.items()
             if job_id in orders and (entry.get("job_id") != job_id or (entry.get("queue"), entry.get("item")) != orders[job_id])]
    if wrong:
        failures.append(f"{len(wrong)} ledger entr(ies) with another job's queue or item: {wrong[:10]}")
    expected_totals = Counter(f"{queue}:{item}" for queue, item in orders.values())
    totals = {k.decode(): int(v) for k, v in client.hgetall("foodapp:ledger:totals").items()}
    if totals != dict(expected_totals):
        diff = {k: (totals.get(k, 0), expected_totals.get(k, 0)) for k in set(totals) | set(expected_totals)
                if totals.get(k, 0) != expected_totals.get(k, 0)}
        failures.append(f"ledger totals differ from the accepted orders (counted, accepted): {diff}")
    figures["ledger entries"] = len(ledger)

    # The status API agrees, for a sample.
    def get(path):
        for attempt in range(3):
            try:
                return http("GET", f"{rng.choice(urls)}{path}", timeout=30)
            except (OSError, HTTPException) as error:
                if attempt == 2:
                    return None, {}, repr(error)
    job_sample = rng.sample(sorted(accepted.jobs), min(50, len(accepted.jobs)))
    for job_id in job_sample:
        status, _, body = get(f"/api/jobs/{job_id}")
        if status != 200 or not isinstance(body, dict) or body.get("state") != "done":
            failures.append(f"GET /api/jobs/{job_id}: {status} {str(body)[:300]}")
    for batch_id in rng.sample(accepted.batches, min(20, len(accepted.batches))):
        status, _, body = get(f"/api/batches/{batch_id}")
        if (status != 200 or not isinstance(body, dict) or not body.get("finished")
                or body.get("done") != body.get("total")):
            failures.append(f"GET /api/batches/{batch_id}: {status} {str(body)[:300]}")

    # Every request we sent was valid, and Redis never failed: any other answer is a bug.
    if accepted.unexpected:
        failures.append(f"{len(accepted.unexpected)} unexpected answer(s): {accepted.unexpected[:5]}")

    # How often jobs ran: the started events of each timeline. The ledger ignores a second
    # run, so this is where a job run twice shows. A kill -9 mid-job counts a crash (the sweep)
    # and allows one more start; any start beyond that is a job run twice.
    runs = read_runs(client, accepted.jobs)
    beyond = sorted(job_id for job_id, run in runs.items() if len(run) > run.crashes + 1)
    if beyond:
        failures.append(f"{len(beyond)} job(s) started more often than once per crash, plus once: "
                        + "; ".join(f"{job_id}: {len(runs[job_id])} starts, {runs[job_id].crashes} crash(es)"
                                    for job_id in beyond[:10]))
    figures.update(runs=sum(len(run) for run in runs.values()),
                   crashes=sum(run.crashes for run in runs.values()),
                   rerun=rerun(runs), reruns_without_crash=len(beyond),
                   reruns_without_crash_sample=beyond[:5], runs_report=report(runs))
    return failures, figures


# --------------------------------------------------------------------------------------
# The whole soak.

@dataclass
class Result:
    config: Config
    failures: list           # guarantees that did not hold
    rss_failures: list       # gross RSS growth of a never-killed process
    rss: list                # rows of RssMonitor.growth
    accepted: Accepted
    kills: list
    figures: dict
    load_seconds: float
    drain_seconds: float
    total_seconds: float
    workdir: Path

    @property
    def ok(self):
        return not self.failures


def soak(config, workdir, log=print):
    """Run the soak in ``workdir`` (logs stay there); a Result. Stops every process it started."""
    workdir = Path(workdir)
    began = time.monotonic()
    log(f"soak: {config.seconds:g} s, {config.workers} workers + {config.batch} batch worker(s) "
        f"x {config.threads} threads, {config.clients} clients at {config.rate:g} requests/s, "
        f"kill -9 every {config.kill_every[0]:g}-{config.kill_every[1]:g} s, seed {config.seed}; logs in {workdir}")
    redis_server = RedisServer(workdir)
    host = Host(workdir, "soak", redis_server.url, workers=config.workers, batch=config.batch,
                threads=config.threads, settings={"kitchen.preparation_seconds": str(config.preparation_seconds)})
    try:
        redis_server.start()
        host.start()
        client = redis_server.client()
        urls = [f"http://127.0.0.1:{port}" for port in host.web_ports]
        accepted, kills, stop = Accepted(), [], threading.Event()
        monitor = RssMonitor(host, config.rss_sample_every).start()

        load_began = time.monotonic()
        deadline = load_began + config.seconds
        threads = [threading.Thread(target=client_loop, args=(n, urls, config, accepted, stop, deadline),
                                    name=f"soak-client-{n}", daemon=True) for n in range(config.clients)]
        threads.append(threading.Thread(target=killer_loop, args=(host, config, kills, stop, deadline),
                                        name="soak-killer", daemon=True))
        for thread in threads:
            thread.start()
        try:
            next_report = load_began + 30
            while any(thread.is_alive() for thread in threads):
                for thread in threads:
                    thread.join(1)
                now = time.monotonic()
                if now >= next_report:
                    next_report = now + 30
                    log(f"  {now - load_began:.0f} s: {len(accepted.jobs)} jobs accepted, {len(kills)} kills")
                if now > deadline + config.request_timeout * config.attempts + 30:
                    raise RuntimeError("the client threads did not stop after the deadline")
        finally:
            stop.set()
        load_seconds = time.monotonic() - load_began

        # Every program running again, then every accepted job finished.
        host.wait_running(timeout=120)
        stored = resolve_unresolved(client, accepted)
        if accepted.unresolved:
            log(f"  {len(accepted.unresolved)} request(s) never answered; {stored} of them were stored (Idempotency-Key)")
        drain_seconds, states = wait_drained(client, accepted, config.drain_timeout, log)
        monitor.stop()
        rng = random.Random(f"{config.seed}-check")
        failures, figures = check(client, urls, accepted, states, rng)
        if states is None:
            failures.insert(0, f"not drained within {config.drain_timeout:g} s")
        rss = monitor.growth(load_began + config.warmup)
        rss_failures = [
            f"{program} {role} pid {pid}: {base:.1f} -> {end:.1f} MB"
            for program, role, pid, base, end, _, protected, _ in rss
            if protected and end - base > config.rss_max_mb and (end - base) / base * 100 > config.rss_max_percent
        ]
        figures["programs restarted"] = sorted({program for _, program, _ in kills})
        return Result(config, failures, rss_failures, rss, accepted, kills, figures,
                      load_seconds, drain_seconds, time.monotonic() - began, workdir)
    finally:
        host.stop()
        redis_server.stop()


def summary(result):
    """The report, as text."""
    a, c = result.accepted, result.config
    by_queue = Counter(queue for queue, _ in a.jobs.values())
    lines = [
        "",
        f"soak summary (seed {c.seed})",
        f"  load {result.load_seconds:.0f} s, drain {result.drain_seconds:.1f} s, total {result.total_seconds:.0f} s",
        f"  requests accepted: {dict(a.requests)}; every answer: {dict(sorted(a.answers.items()))}",
        f"  resent {a.resent} (lost answer or 503), replayed {a.replayed}, never answered {len(a.unresolved)}",
        f"  jobs accepted: {len(a.jobs)} {dict(by_queue)}; ledger entries: {result.figures.get('ledger entries')}",
        f"  {result.figures.get('runs_report')}; crashes (kill -9 mid-job): {result.figures.get('crashes')}; "
        f"runs beyond one per crash: {result.figures.get('reruns_without_crash')} "
        f"{result.figures.get('reruns_without_crash_sample') or ''}",
        f"  kill -9: {len(result.kills)} {dict(Counter(program for _, program, _ in result.kills))}",
        "  RSS (MB) after warm-up -> end (max), growth:",
    ]
    for program, role, pid, base, end, top, protected, original in result.rss:
        growth = end - base
        note = "  (never killed: checked)" if protected else "" if original else "  (restarted after a kill)"
        lines.append(f"    {program:22} {role:6} pid {pid:<7} {base:7.1f} -> {end:7.1f} (max {top:6.1f})  "
                     f"{growth:+6.1f} MB {growth / base * 100:+6.1f} %{note}")
    if result.failures:
        lines.append("FAILED guarantees:")
        lines += [f"  - {failure}" for failure in result.failures]
    else:
        lines.append("guarantees held: one ledger entry per accepted order, none other; no job stuck; "
                     "no job started more than once per crash, plus once")
    if result.rss_failures:
        lines.append(f"RSS grew grossly (> {c.rss_max_percent:g} % and > {c.rss_max_mb:g} MB):")
        lines += [f"  - {failure}" for failure in result.rss_failures]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description="foodapp soak: mixed load with random worker kill -9s")
    parser.add_argument("--seconds", type=float, default=300, help="how long the load runs (default 300)")
    parser.add_argument("--workers", type=int, default=3, help="queue workers (default 3; workers_00 is never killed)")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker process (default 2)")
    parser.add_argument("--clients", type=int, default=3, help="client threads (default 3)")
    parser.add_argument("--rate", type=float, default=12.0, help="requests a second, all clients (default 12)")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 8.0), metavar=("MIN", "MAX"),
                        help="seconds between two kill -9s, uniformly at random (default 2 8)")
    parser.add_argument("--seed", type=int, default=None, help="the seed of kills and load (default: random, printed)")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder even when everything held")
    args = parser.parse_args(argv)
    if args.workers < 2:
        parser.error("--workers must be at least 2 (workers_00 is never killed; another one is)")
    if not 0 < args.kill_every[0] <= args.kill_every[1]:
        parser.error("--kill-every MIN MAX: 0 < MIN <= MAX")
    config = Config(seconds=args.seconds, workers=args.workers, threads=args.threads, clients=args.clients,
                    rate=args.rate, kill_every=tuple(args.kill_every), seed=args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="foodapp-soak-"))
    try:
        result = soak(config, workdir, log=lambda text: print(text, flush=True))
    except BaseException:
        print(f"the soak stopped with an error; logs: {workdir}", flush=True)
        raise
    print(summary(result), flush=True)
    failed = result.failures or result.rss_failures
    if failed or args.keep:
        print(f"logs: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
