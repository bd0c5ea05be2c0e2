"""`make soak`: a bounded mixed load for a set time, with every fault production must survive.

    python -m bench.soak --seconds 300 [--faults worker,master,partition] [--seed 1234]

Redis is the seed's production topology: a master, a replica and three Sentinels (quorum 2,
down-after 1 s). Where this machine allows network namespaces (root and ``ip netns``) they
are laid out as hosts A, B and C on a bridge (tests/cluster.py): the master on A, the
replica on B, a Sentinel on each; else on free ports of 127.0.0.1. One host of production
(supervisord running supervisor/production.conf, shrunk: two web processes, ``--workers``
queue workers, one batch worker; see tests/hosts.py) runs in this namespace (HOST 0, which
reaches every host over the bridge) with production-like settings: it finds the master
through the Sentinels, an enqueue waits for one replica's acknowledgement (500 ms a try) and
rides out a failover for 8 s before it answers 503.

For ``--seconds`` a few client threads send to 127.0.0.1 single orders (/comer, /beber),
menus (POST /menu, 20 items) and reports (POST /reports), paced to ``--rate`` requests a
second, each with its own Idempotency-Key: a request whose answer was lost, or answered 503
(``redis_unavailable``, or ``outcome_unknown`` naming the job that may be stored), is sent
again with the same key, which never makes a second job.

Meanwhile, at random times (seeded; the seed is printed), bounded in number:

- ``worker``: a random worker process gets SIGKILL; supervisord starts it again;
- ``master``: the master's redis-server gets SIGKILL; once the Sentinels have promoted the
  replica, it is started again (empty) and the Sentinels make it the new master's replica;
- ``partition``: the master's host is cut off from the two others (namespaces only: else
  this kind is left out, saying so); the Sentinels on the far side promote the replica; a
  few seconds later the network heals and the old master becomes the new one's replica.

Worker kills come at any time; the Redis faults one at a time, each only once the topology
is whole again (the replica in sync, every Sentinel seeing it). Each fault is recorded with
its (before, after) wall-clock window.

At the end, once every accepted job is finished (bounded wait), it checks, on the master:

- 0 lost: every accepted comer/beber job (a 202, or a request never answered 202 whose
  Idempotency-Key the master holds) has exactly one ledger entry, with its queue and item;
  the ledger has no other entry, and its totals match the accepted orders item by item; no
  job named by an ``outcome_unknown`` answer exists unless an accepted answer names it;
- no job is stuck: every accepted job (reports too) is ``done``; no queue, delay queue,
  dead-letter queue, message hash or worker's ack set holds anything;
- re-runs only at faults (tests/runs.py): every start after a job's first follows a fault
  the job was in flight at (assert_reruns_only_at_kills' rule, with every fault's window);
  and a job in flight at no Redis fault starts at most once more than the crashes its
  status counts (the worker-kill bound). Timelines are read from the last master, plus what
  a cut-off master ran (its ledger entries written during the partition) before it healed;
- the status API agrees for a sample of jobs and menus;
- memory of the never-killed processes (web_0, web_1, workers_00's worker process): flat,
  judged on the second half of the load, once warm-up and the first faults have passed:
  their RSS may grow by at most ``flat_mb`` (2 MB) over it. A leak grows with the jobs, so
  about as much in each half (2 MB over the second half of a 30-minute soak is under 100
  bytes per job); a heap warming up or fragmenting grows early and then levels off. RSS
  from warm-up to the end and the private (anonymous) share of it are printed beside it;
  gross growth (more than 50 % and more than 30 MB) fails too.

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
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.cluster import Cluster, SentinelEvents, namespaces_available  # noqa: E402
from tests.hosts import Host  # noqa: E402
from tests.runs import ROUNDING, describe, merge, read_runs, report, rerun, unexplained  # noqa: E402
from tests.servers import http, wait_until  # noqa: E402

FOODS = ("pimiento", "pepino", "tomate", "salmon", "zanahoria", "platano", "paella", "jamón")
DRINKS = ("rioja", "martini", "ronmiel", "whisky", "agua", "café")
QUEUES = ("comer", "beber", "batch")
TERMINAL = ("done", "failed", "dead")
#: Programs never killed: their RSS is compared with itself (a killed worker has a new pid).
PROTECTED = ("web:web_0", "web:web_1", "workers:workers_00")
FAULT_KINDS = ("worker", "master", "partition")
#: "failover": one the Sentinels made that no fault of the soak explains (found afterwards
#: in their events); it counts as a fault, and the summary names it.
REDIS_FAULTS = ("master", "partition", "failover")
FAULT_NAMES = {"worker": "worker kill -9", "master": "master kill -9", "partition": "partition",
               "failover": "unplanned failover"}


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
    faults: tuple = FAULT_KINDS  # the kinds wanted; partition only where namespaces are
    kill_every: tuple = (2.0, 8.0)   # seconds between two worker kills, uniformly at random
    #: Seconds from the end of one Redis fault (the topology whole again) to the next one,
    #: uniformly at random; the first comes that long after the load starts.
    redis_fault_every: tuple = (20.0, 40.0)
    partition_hold: tuple = (1.0, 4.0)   # seconds a partition lasts once the far side promoted
    namespaces: bool = True     # lay Redis out in network namespaces when the machine allows
    #: Keep the load going past ``seconds`` (at most ``seconds`` more) until every wanted
    #: and possible fault kind happened at least once: the short test needs each.
    each_fault: bool = False
    down_after_ms: int = 2000   # Sentinel: the master is down after this long unanswered
    failover_timeout_ms: int = 4000
    retry_seconds: float = 8    # enqueue.retry_seconds: an enqueue rides out a failover
    replica_timeout_ms: int = 500
    warmup: float = None        # seconds before the RSS baseline; default min(30, seconds / 4)
    preparation_seconds: float = 0.05
    drain_timeout: float = None  # default max(180, seconds)
    seed: int = None
    request_timeout: float = 20  # longer than enqueue.retry_seconds plus a replica WAIT
    attempts: int = 6           # sends of one request (same Idempotency-Key) before giving up
    rss_sample_every: float = 2.0
    rss_max_percent: float = 50
    rss_max_mb: float = 30
    flat_mb: float = 2.0        # RSS growth allowed over the second half of the load

    def __post_init__(self):
        if self.seed is None:
            self.seed = random.SystemRandom().randrange(1, 2**31)
        if self.warmup is None:
            self.warmup = min(30.0, self.seconds / 4)
        if self.drain_timeout is None:
            self.drain_timeout = max(180.0, self.seconds)
        unknown = set(self.faults) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kind(s) {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}")


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
    """(RSS, its anonymous part) in kB: what the process holds, and what is its own (heap,
    stacks) rather than pages of files it mapped (the interpreter, libraries); or None."""
    try:
        with open(f"/proc/{pid}/status") as f:
            status = f.read()
        return (int(re.search(r"VmRSS:\s+(\d+)", status).group(1)),
                int(re.search(r"RssAnon:\s+(\d+)", status).group(1)))
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
        web = re.search(r"(?:--port |http_port=)(\d+)", cmdline)
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
        self.samples = defaultdict(list)   # (program, role, pid) -> [(monotonic, RSS kB, anonymous kB)]
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
                self.samples[(program, role, pid)].append((now, *kb))
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

    def growth(self, baseline_after, load_ended):
        """A Growth for each web and worker process alive at the end and sampled after
        ``baseline_after``; the baseline is its first sample from then on (a worker restarted
        later is compared with its own first sample), and the second half is judged from the
        sample nearest the middle of [baseline_after, load_ended] to the last one before
        load_ended. Dramatiq's main processes (a few MB, no jobs) are left out."""
        middle = (baseline_after + load_ended) / 2
        rows = []
        for (program, role, pid), samples in sorted(self.samples.items()):
            if role == "main" or (program, role, pid) not in self.last:
                continue
            after = [sample for sample in samples if sample[0] >= baseline_after]
            if len(after) < 2:
                continue
            loaded = [sample for sample in after if sample[0] <= load_ended] or after
            half = min(loaded, key=lambda sample: abs(sample[0] - middle))
            original = samples[0][0] < baseline_after   # else started after a kill
            rows.append(Growth(program, role, pid, base=after[0][1] / 1024, end=after[-1][1] / 1024,
                               top=max(sample[1] for sample in after) / 1024,
                               second_half=(loaded[-1][1] - half[1]) / 1024,
                               anon_base=after[0][2] / 1024, anon_end=after[-1][2] / 1024,
                               protected=program in PROTECTED and original, original=original))
        return rows


def memory_failures(rows, config):
    """What is wrong with the never-killed processes' memory: not flat over the second half
    of the load, or grossly grown since warm-up."""
    return [
        f"{row.program} {row.role} pid {row.pid}: {row.base:.1f} -> {row.end:.1f} MB"
        for row in rows if row.protected and row.end - row.base > config.rss_max_mb
        and (row.end - row.base) / row.base * 100 > config.rss_max_percent
    ] + [
        f"{row.program} {row.role} pid {row.pid}: not flat, {row.second_half:+.1f} MB over the second half of the load "
        f"(at most {config.flat_mb:g} MB)"
        for row in rows if row.protected and row.second_half > config.flat_mb
    ]


@dataclass
class Growth:
    """One process's memory over the soak, in MB."""
    program: str
    role: str
    pid: int
    base: float          # RSS after warm-up
    end: float           # RSS at the end (after the drain)
    top: float
    second_half: float   # RSS growth over the second half of the load: the flatness judged
    anon_base: float     # the anonymous (private) part of RSS, after warm-up and at the end
    anon_end: float
    protected: bool      # never killed, so judged
    original: bool       # running since before the baseline


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
# Faults: each recorded with its wall-clock window, for the re-run bound.

@dataclass
class Fault:
    kind: str                   # "worker", "master" or "partition"
    began: float                # time.time() just before it
    ended: float                # time.time() once it is over (see below)
    what: str                   # the program and pid killed, the host cut off
    promoted: float = None      # time.time() when the Sentinels named the new master
    healed: float = None        # time.time() when a partition healed
    recovered: float = None     # time.time() when the topology was whole again
    #: The re-runs this fault explains (the latest Redis fault that does, else a worker
    #: kill): seconds from its beginning to each new start.
    reruns: list = field(default_factory=list)

    @property
    def window(self):
        """(before, after): a job in flight in it may start again.

        A worker kill: around the kill. A master kill or a partition: from the kill or the
        cut until the old master's server is the new master's replica again, in sync: until
        then the new master has no replica, so a worker holds on to its writes (a retry, an
        acknowledgement) and may die holding them, and a worker may still reach the cut-off
        master."""
        return self.began, self.ended


@dataclass
class Faults:
    """What the fault threads did, shared with the main thread."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: list = field(default_factory=list)        # Fault, in the order they began
    begun: set = field(default_factory=set)         # kinds that began at least once
    errors: list = field(default_factory=list)      # a Redis fault that did not go as it must
    #: Per partition: {job_id: Runs} of the jobs whose ledger entry the cut-off master wrote
    #: during the partition, read from it just before the network healed.
    cut_off_runs: list = field(default_factory=list)

    def add(self, fault):
        with self.lock:
            self.done.append(fault)

    def of(self, kind):
        with self.lock:
            return [f for f in self.done if f.kind == kind]


def killer_loop(host, config, faults, stop):
    """kill -9 a random worker process at random intervals until stopped; bounded."""
    rng = random.Random(f"{config.seed}-killer")
    low, high = config.kill_every
    for _ in range(int(2 * config.seconds / low) + 1):
        if stop.wait(rng.uniform(low, high)):
            return
        before = time.time()
        killed = kill_a_worker(host, rng)
        if killed:
            with faults.lock:
                faults.begun.add("worker")
            faults.add(Fault("worker", before, time.time(), f"{killed[0]} pid {killed[1]}"))


def cut_off_ledger(client, since):
    """Job ids whose ledger entry ``client`` (a cut-off master) wrote at or after ``since``."""
    found = []
    for job_id, entry in client.hscan_iter("foodapp:ledger", count=2000):
        try:
            if float(json.loads(entry)["at"]) >= since - ROUNDING:
                found.append(job_id.decode())
        except (ValueError, KeyError, TypeError):
            continue
    return found


def master_fault(cluster, log, elapsed):
    """kill -9 the master; once the replica is promoted, its server comes back as a replica."""
    host, before, promoted = cluster.kill_master()
    new = cluster.other(host)
    log(f"  {elapsed(before)}: master kill -9 of {host}: {new} promoted after {promoted - before:.1f} s")
    cluster.restart_as_replica(host)
    fault = Fault("master", before, time.time(), f"redis-server on {host} (then {new} master)", promoted=promoted)
    fault.recovered = fault.ended
    log(f"  {elapsed(fault.recovered)}: {host} back as {new}'s replica, in sync, "
        f"{fault.recovered - before:.1f} s after the kill")
    return fault


def partition_fault(cluster, config, rng, faults, stop, log, elapsed):
    """Cut the master's host off from the two others; heal once the far side promoted the
    replica and a few seconds passed; wait until the old master is the new one's replica."""
    host = cluster.master()
    assert host, f"no master to cut off: {cluster.views()}"
    new = cluster.other(host)
    before = time.time()
    try:
        cluster.partition(host)
        cluster.wait_promoted(new)
        promoted = time.time()
        log(f"  {elapsed(before)}: partition: {host} cut off from the other hosts; {new} promoted after "
            f"{promoted - before:.1f} s")
        # The partition's length, not a wait for a condition: a split lasts a while.
        stop.wait(rng.uniform(*config.partition_hold))
        # What the cut-off master ran meanwhile is lost when it rejoins: read it first.
        old = cluster.redis(host, socket_timeout=30)
        ran = cut_off_ledger(old, before)
        faults.cut_off_runs.append(read_runs(old, ran))
    finally:
        cluster.heal()
    healed = time.time()
    cluster.rejoin(host, what=f"{host}'s old master to come back as {new}'s replica, in sync")
    recovered = time.time()
    log(f"  {elapsed(recovered)}: partition healed after {healed - before:.1f} s; {host} back as {new}'s "
        f"replica, in sync, {recovered - healed:.1f} s later; the cut-off master wrote {len(ran)} ledger "
        f"entr{'y' if len(ran) == 1 else 'ies'} meanwhile")
    return Fault("partition", before, recovered, f"host {host} cut off from the others (then {new} master)",
                 promoted=promoted, healed=healed, recovered=recovered)


def unplanned(events, faults, config, log, elapsed):
    """Failovers the Sentinels announced that no Redis fault of the soak explains (a master
    judged down on a busy machine, say): each becomes a fault of kind "failover", from its
    master's first +sdown in the minute before (else down-after plus 5 s before) until a
    minute after, and the summary names it. Returns them."""
    found = []
    windows = [fault.window for fault in faults.done if fault.kind in REDIS_FAULTS]
    with events.lock:
        sdowns = sorted(at for at, _, channel, data in events.events if channel == "+sdown")
    for at, old, new in events.switches():
        if any(began - 1 <= at <= ended + 1 for began, ended in windows):
            continue
        before = [t for t in sdowns if at - 60 <= t <= at]
        began = before[0] if before else at - config.down_after_ms / 1000 - 5
        fault = Fault("failover", began, at + 60, f"the Sentinels moved the master from {old} to {new} "
                      f"(no fault of the soak)", promoted=at, recovered=at + 60)
        faults.add(fault)
        found.append(fault)
        log(f"  {elapsed(at)}: unplanned failover: {old} -> {new}")
    return found


def redis_fault_loop(cluster, kinds, config, faults, stop, log, elapsed):
    """One Redis fault at a time, at random times, until stopped; bounded in number. The
    kinds come in shuffled rounds (each kind once a round), so a short run sees them all."""
    rng = random.Random(f"{config.seed}-redis-faults")
    low, high = config.redis_fault_every
    order = []
    for _ in range(int(2 * config.seconds / max(low, 1.0)) + 1):
        if stop.wait(rng.uniform(low, high)):
            return
        if not order:
            order = list(kinds)
            rng.shuffle(order)
        kind = order.pop()
        with faults.lock:
            faults.begun.add(kind)
        try:
            if kind == "master":
                faults.add(master_fault(cluster, log, elapsed))
            else:
                faults.add(partition_fault(cluster, config, rng, faults, stop, log, elapsed))
        except AssertionError as error:
            # The topology did not come back as it must: no more Redis faults (the check
            # names this), but try to leave the data where the workers will find it.
            with faults.lock:
                faults.errors.append(f"{FAULT_NAMES[kind]}: {error}")
            log(f"  {kind} fault did not complete: {error}; no more Redis faults")
            for host, process in cluster.redis_procs.items():
                if not process.alive():
                    other = cluster.other(host)
                    try:
                        cluster.start_redis(host, replicaof=other)
                    except AssertionError as again:
                        faults.errors.append(f"restarting redis-server on {host}: {again}")
            return


# --------------------------------------------------------------------------------------
# The load: what was sent, what was accepted.

@dataclass
class Accepted:
    """Everything the clients learned, shared between their threads."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    jobs: dict = field(default_factory=dict)        # job_id -> (queue, item or None)
    batches: list = field(default_factory=list)     # batch ids of accepted menus
    requests: Counter = field(default_factory=Counter)   # kind -> requests answered 202
    answers: Counter = field(default_factory=Counter)    # "kind status [error]" -> count, every send
    replayed: int = 0                                # 202s with Idempotent-Replayed
    resent: int = 0                                  # sends after a lost answer or a 503
    unexpected: list = field(default_factory=list)   # (kind, status, body) of other answers
    unresolved: list = field(default_factory=list)   # (kind, key): no 202 after every attempt
    resolved: Counter = field(default_factory=Counter)   # "stored"/"not stored": unresolved, settled
    #: job ids named by 503 outcome_unknown answers -> the request's Idempotency-Key
    unknown: dict = field(default_factory=dict)
    #: job id -> (time.time() of its 202, web URL, send number, replayed), for a lost job's story
    when: dict = field(default_factory=dict)

    def add(self, kind, body, at=None, url=None, attempt=None, replayed=False):
        entries = body["jobs"] if kind == "menu" else [body]
        with self.lock:
            self.requests[kind] += 1
            for entry in entries:
                self.jobs[entry["job_id"]] = (entry["queue"], entry.get("item"))
                self.when[entry["job_id"]] = (at, url, attempt, replayed)
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


def honest_503(kind, answer):
    """Why a 503 answer breaks the contract, or None: it must say redis_unavailable (nothing
    stored) or outcome_unknown naming the job(s) and their status URLs."""
    if not isinstance(answer, dict) or answer.get("error") not in ("redis_unavailable", "outcome_unknown"):
        return "a 503 that is neither redis_unavailable nor outcome_unknown"
    if answer["error"] == "outcome_unknown":
        named = answer.get("jobs", []) if kind == "menu" else [answer]
        if not named or not all(entry.get("job_id") and entry.get("status_url") for entry in named):
            return "an outcome_unknown answer that does not name its job(s) and status URL(s)"
    return None


def send(urls, kind, request, accepted, config, rng, stop):
    """Send one request until it is answered 202 (same Idempotency-Key each time), bounded."""
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
        error = answer.get("error") if status == 503 and isinstance(answer, dict) else None
        with accepted.lock:
            accepted.answers[f"{kind} {status}" + (f" {error}" if error else "")] += 1
        if status == 202:
            replayed = answer_headers.get("Idempotent-Replayed") == "true"
            if replayed:
                with accepted.lock:
                    accepted.replayed += 1
            accepted.add(kind, answer, at=time.time(), url=url, attempt=attempt + 1, replayed=replayed)
            return True
        if status == 503:
            wrong = honest_503(kind, answer)
            if wrong:
                with accepted.lock:
                    accepted.unexpected.append((kind, f"{status}: {wrong}", str(answer)[:500]))
                return False
            if error == "outcome_unknown":
                with accepted.lock:
                    for entry in answer.get("jobs", []) if kind == "menu" else [answer]:
                        accepted.unknown[entry["job_id"]] = key
            # Redis is failing over: send again, same key, after Retry-After (at most 5 s).
            # Pacing, not a wait for a condition.
            stop.wait(min(float(answer_headers.get("Retry-After", 1)), 5))
            continue
        with accepted.lock:
            accepted.unexpected.append((kind, status, str(answer)[:500]))
        return False
    with accepted.lock:
        accepted.unresolved.append((kind, key))
    return False


def client_loop(number, urls, config, accepted, stop, max_seconds):
    """One client thread: paced requests of the configured mix until stopped; bounded."""
    rng = random.Random(f"{config.seed}-client-{number}")
    kinds, weights = zip(*config.mix)
    interval = config.clients / config.rate
    next_at = time.monotonic() + rng.random() * interval
    for _ in range(int(max_seconds * config.rate / config.clients * 2) + 10):
        if stop.is_set():
            return
        kind = rng.choices(kinds, weights)[0]
        try:
            send(urls, kind, request_for(kind, rng, config.menu_size), accepted, config, rng, stop)
        except Exception as error:  # a bug here must show in the result, not end a thread quietly
            with accepted.lock:
                accepted.unexpected.append((kind, "client error", repr(error)))
        # Pacing, not a wait for a condition: the load is bounded in rate as well as time.
        next_at += interval
        stop.wait(max(0.0, next_at - time.monotonic()))


# --------------------------------------------------------------------------------------
# The end: resolve lost answers, wait for the jobs, check the guarantees.

def resolve_unresolved(client, accepted):
    """Requests never answered 202: their Idempotency-Key on the master says whether they
    were stored (its answer names the jobs, which then count as accepted) or not."""
    for kind, key in accepted.unresolved:
        raw = client.get(f"foodapp:idempotency:{key}")
        if raw is not None:
            accepted.add(kind, json.loads(raw.decode().split("\n", 1)[1]))
            accepted.resolved["stored"] += 1
        else:
            accepted.resolved["not stored"] += 1
    return accepted.resolved["stored"]


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
    """Wait until every accepted job the master knows is finished and Redis holds nothing;
    (seconds, states)."""
    began = time.monotonic()
    last_print = [began]

    def drained():
        states = job_states(client, accepted.jobs)
        # A job unknown to the master (no status record: the enqueue stores it with the job)
        # is lost, not pending: once the faults are over, nothing brings it back.
        pending = Counter(state for state in states.values() if state not in TERMINAL and state is not None)
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


def in_flight(run, window):
    """Whether a job (its Runs) was in flight in ``window``: a run of it began before the
    window ended and was not done before the window began (tests/runs.py's rule)."""
    began, ended = window
    return any(start <= ended + ROUNDING and not any(start <= done < began for done in run.done)
               for start in run.starts)


def count_runs(client, accepted, faults):
    """{job_id: Runs} of every accepted job: the master's timelines, plus the runs a cut-off
    master alone kept (merged only where it adds a start, so that the master's timeline and
    its retries stay whole elsewhere); and the cut-off masters' ledger entries of jobs that
    were never accepted (a job run where no failover keeps it)."""
    runs = read_runs(client, accepted.jobs)
    merged, strays = [], {}
    for cut in faults.cut_off_runs:
        for job_id, old in cut.items():
            if job_id not in runs:
                strays[job_id] = old
            elif not set(old.starts) <= set(runs[job_id].starts):
                runs[job_id] = merge({job_id: runs[job_id]}, {job_id: old})[job_id]
                merged.append(job_id)
    return runs, merged, strays


def attribute(runs, faults):
    """Tell each fault the re-runs it explains (Fault.reruns), for the summary only (the
    checks are below). For each start after a job's first (not the retry of a run that
    raised), of the faults whose window explains it: the latest worker kill while the job's
    status counts more crashes than re-runs given to worker kills (the sweep counts a crash
    only for a dead worker's job), else the latest Redis fault, else the latest fault."""
    for job_id in rerun(runs):
        run = runs[job_id]
        retried = run.retries[1:] if len(run.retries) == len(run.starts) else [False] * (len(run) - 1)
        by_kills = 0
        for previous, start, retry in zip(run.starts, run.starts[1:], retried):
            if retry:
                continue
            explaining = [fault for fault in faults.done
                          if previous <= fault.ended + ROUNDING and fault.began <= start + ROUNDING
                          and not any(previous <= done < fault.began for done in run.done)]
            kills = [fault for fault in explaining if fault.kind == "worker"]
            redis_faults = [fault for fault in explaining if fault.kind in REDIS_FAULTS]
            if kills and run.crashes > by_kills:
                chosen = kills[-1]
                by_kills += 1
            else:
                chosen = (redis_faults or explaining or [None])[-1]
            if chosen:
                chosen.reruns.append(start - chosen.began)


def check_runs(runs, faults):
    """The re-run guarantees, as (failures, figures)."""
    failures, figures = [], {}
    attribute(runs, faults)
    windows = [fault.window for fault in faults.done]
    redis_windows = [fault.window for fault in faults.done if fault.kind in REDIS_FAULTS]
    # Every start after the first follows a fault the job was in flight at (any kind).
    bad = unexplained(runs, windows)
    if bad:
        failures.append(f"{len(bad)} job(s) started again without being in flight at a fault: {describe(bad)}")
    # A job in flight at no Redis fault: worker kills only, whose sweep counts a crash for
    # each job a dead worker was running before giving it back. One start more than that
    # (plus the retries of runs that raised) is a job run twice.
    beyond = {}
    for job_id, run in runs.items():
        retried = sum(run.retries[1:]) if len(run.retries) == len(run.starts) else 0
        if len(run) - retried > run.crashes + 1 and not any(in_flight(run, w) for w in redis_windows):
            beyond[job_id] = run
    if beyond:
        failures.append(f"{len(beyond)} job(s) in flight at no Redis fault started more often than once per "
                        f"crash, plus once: {describe(beyond)}")
    at_redis = [job_id for job_id in rerun(runs) if any(in_flight(runs[job_id], w) for w in redis_windows)]
    figures.update(runs=sum(len(run) for run in runs.values()), crashes=sum(run.crashes for run in runs.values()),
                   rerun=rerun(runs), rerun_at_redis_faults=len(at_redis), unexplained=sorted(bad),
                   beyond_crashes=sorted(beyond), runs_report=report(runs),
                   retries=sum(sum(run.retries[1:]) for run in runs.values()))
    return failures, figures


def lost_story(job_ids, accepted, faults, load_began):
    """How each lost job was accepted: when (from the load's start), through which web
    process, on which send, replayed or not, and the Redis faults under way then."""
    stories = []
    for job_id in sorted(job_ids)[:20]:
        at, url, attempt, replayed = accepted.when.get(job_id, (None, None, None, None))
        if at is None:
            stories.append(f"{job_id}: settled by its Idempotency-Key at the end (no 202)")
            continue
        during = [f"{FAULT_NAMES[f.kind]} at +{f.began - load_began:.1f} s (+{at - f.began:.1f} s into it; "
                  f"promoted +{(f.promoted or f.began) - f.began:.1f} s"
                  + (f", healed +{f.healed - f.began:.1f} s" if f.healed else "") + ")"
                  for f in faults.done if f.kind in REDIS_FAULTS and f.began - 1 <= at <= f.ended + 1]
        stories.append(f"{job_id}: 202 at +{at - load_began:.1f} s from {url} on send {attempt}"
                       f"{' (replayed)' if replayed else ''}; during: {during or 'no Redis fault'}")
    return stories


def check(client, urls, accepted, states, faults, rng, load_began=0.0):
    """The guarantees, as a list of failures (empty: all held) and some figures."""
    failures = []
    figures = {}
    if states is None:
        states = job_states(client, accepted.jobs)
    missing_jobs = sorted(job_id for job_id, state in states.items() if state is None)
    not_done = {job_id: state for job_id, state in states.items() if state not in ("done", None)}
    if missing_jobs:
        failures.append(f"{len(missing_jobs)} accepted job(s) unknown to the master (lost): {missing_jobs[:20]}")
    if not_done:
        sample = dict(list(not_done.items())[:20])
        failures.append(f"{len(not_done)} accepted job(s) not done (stuck): "
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
        failures.append(f"{len(missing)} accepted order(s) have no ledger entry (lost): {missing[:20]}")
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
    lost = set(missing) | set(missing_jobs)
    figures["lost"] = len(lost)
    if lost:
        figures["lost_story"] = lost_story(lost, accepted, faults, load_began)
        failures.append(f"{len(lost)} lost job(s), how each was accepted: " + "; ".join(figures["lost_story"]))

    # An answer never hides a job: a job an outcome_unknown answer named either is accepted
    # (a later 202, or its key stored) or was never kept; it never exists on its own (a
    # second job for one Idempotency-Key, or a job without its key).
    orphans = []
    unknown = sorted(job_id for job_id in accepted.unknown if job_id not in accepted.jobs)
    for first in range(0, len(unknown), 1000):
        chunk = unknown[first:first + 1000]
        with client.pipeline(transaction=False) as pipe:
            for job_id in chunk:
                pipe.exists(f"foodapp:job:{job_id}")
            orphans += [job_id for job_id, exists in zip(chunk, pipe.execute()) if exists]
    if orphans:
        failures.append(f"{len(orphans)} job(s) named by an outcome_unknown answer exist though no accepted "
                        f"answer or stored Idempotency-Key names them: "
                        f"{[(job_id, accepted.unknown[job_id]) for job_id in orphans[:10]]}")
    figures["unknown named"] = len(accepted.unknown)
    figures["unknown accepted"] = len(accepted.unknown) - len(unknown)

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

    # Every request was valid: any answer but 202 and an honest 503 is a bug.
    if accepted.unexpected:
        failures.append(f"{len(accepted.unexpected)} unexpected answer(s): {accepted.unexpected[:5]}")

    # How often jobs ran: the started events of each timeline (the ledger hides a second run).
    runs, merged, strays = count_runs(client, accepted, faults)
    if strays:
        failures.append(f"{len(strays)} job(s) ran on a cut-off master (ledger entry written there) but exist "
                        f"nowhere the failover kept; their timelines there: {describe(strays)}")
    run_failures, run_figures = check_runs(runs, faults)
    failures += run_failures
    figures.update(run_figures, cut_off_merged=len(merged))
    if faults.errors:
        failures += [f"a fault did not complete: {error}" for error in faults.errors]
    return failures, figures, runs


# --------------------------------------------------------------------------------------
# The whole soak.

@dataclass
class Result:
    config: Config
    failures: list           # guarantees that did not hold
    rss_failures: list       # a never-killed process whose memory was not flat, or grew grossly
    rss: list                # Growth rows (RssMonitor.growth)
    accepted: Accepted
    faults: Faults
    kinds: tuple             # the fault kinds that ran
    skipped: dict            # kind -> why it did not run
    placement: str           # where Redis ran
    figures: dict
    load_seconds: float
    drain_seconds: float
    total_seconds: float
    load_began: float        # time.time() when the load began
    workdir: Path
    runs: dict = None        # {job_id: Runs}, for a failure's timelines

    @property
    def ok(self):
        return not self.failures

    @property
    def kills(self):
        """The worker kills."""
        return self.faults.of("worker")


def fault_kinds(config):
    """(kinds that will run, {kind: why not}, use namespaces): partition needs namespaces."""
    skipped = {}
    use_namespaces = False
    if config.namespaces:
        use_namespaces, why = namespaces_available()
        if not use_namespaces:
            skipped["partition"] = f"no network namespaces ({why}); Redis runs on loopback"
    else:
        skipped["partition"] = "namespaces turned off (--loopback); Redis runs on loopback"
    kinds = tuple(kind for kind in config.faults if kind not in skipped)
    skipped = {kind: why for kind, why in skipped.items() if kind in config.faults}
    return kinds, skipped, use_namespaces


def soak(config, workdir, log=print):
    """Run the soak in ``workdir`` (logs stay there); a Result. Stops every process it started
    and removes the namespaces it made, even on failure."""
    workdir = Path(workdir)
    began = time.monotonic()
    kinds, skipped, use_namespaces = fault_kinds(config)
    log(f"soak: {config.seconds:g} s, {config.workers} workers + {config.batch} batch worker(s) "
        f"x {config.threads} threads, {config.clients} clients at {config.rate:g} requests/s, seed {config.seed}; "
        f"logs in {workdir}")
    log(f"  faults: {', '.join(FAULT_NAMES[k] for k in kinds) or 'none'}"
        + (f" (worker kill -9 every {config.kill_every[0]:g}-{config.kill_every[1]:g} s)" if "worker" in kinds else "")
        + (f" (one Redis fault {config.redis_fault_every[0]:g}-{config.redis_fault_every[1]:g} s after the "
           f"topology is whole again)" if set(kinds) & set(REDIS_FAULTS) else ""))
    for kind, why in skipped.items():
        log(f"  {FAULT_NAMES[kind]}: skipped: {why}")
    cluster = Cluster(workdir / "redis", namespaces=use_namespaces, down_after_ms=config.down_after_ms,
                      failover_timeout_ms=config.failover_timeout_ms)
    host = Host(workdir, "soak", "redis://127.0.0.1:1/0", workers=config.workers, batch=config.batch,
                threads=config.threads, env={"FOODAPP_REDIS_SENTINELS": cluster.sentinel_setting},
                settings={"kitchen.preparation_seconds": str(config.preparation_seconds),
                          "enqueue.replicas": "1", "enqueue.replica_timeout_ms": str(config.replica_timeout_ms),
                          "enqueue.retry_seconds": str(config.retry_seconds)})
    events = None
    try:
        (workdir / "redis").mkdir(parents=True, exist_ok=True)
        cluster.start()
        events = SentinelEvents(cluster).start()
        log(f"  Redis: {cluster.placement}")
        host.start()
        # The workers run jobs (their heartbeats are in) before any fault.
        wait_until(lambda: cluster.master_client().zcard("dramatiq:__heartbeats__") >= config.workers + config.batch,
                   60, "every worker process's heartbeat", interval=0.2)
        urls = [f"http://127.0.0.1:{port}" for port in host.web_ports]
        accepted, faults, stop = Accepted(), Faults(), threading.Event()
        monitor = RssMonitor(host, config.rss_sample_every).start()

        load_began, load_began_wall = time.monotonic(), time.time()
        deadline = load_began + config.seconds
        latest = deadline + (config.seconds if config.each_fault else 0)

        def elapsed(wall):
            return f"+{wall - load_began_wall:.0f} s"
        threads = [threading.Thread(target=client_loop, args=(n, urls, config, accepted, stop, latest - load_began),
                                    name=f"soak-client-{n}", daemon=True) for n in range(config.clients)]
        if "worker" in kinds:
            threads.append(threading.Thread(target=killer_loop, args=(host, config, faults, stop),
                                            name="soak-killer", daemon=True))
        redis_kinds = [kind for kind in kinds if kind in REDIS_FAULTS]
        if redis_kinds:
            threads.append(threading.Thread(target=redis_fault_loop,
                                            args=(cluster, redis_kinds, config, faults, stop, log, elapsed),
                                            name="soak-redis-faults", daemon=True))
        for thread in threads:
            thread.start()
        try:
            next_report = load_began + 30
            # Bounded: the clients stop within their attempts, a Redis fault under way
            # within its own bounded waits (failover 60 s, back in sync 120 s).
            limit = latest + config.request_timeout * config.attempts + 400
            while any(thread.is_alive() for thread in threads):
                for thread in threads:
                    thread.join(1)
                now = time.monotonic()
                if not stop.is_set() and now >= deadline:
                    with faults.lock:
                        missing = set(kinds) - faults.begun
                    if not config.each_fault or not missing or now >= latest:
                        stop.set()
                        log(f"  {elapsed(time.time())}: load stopped"
                            + (f" (kinds never begun: {sorted(missing)})" if missing else "")
                            + "; waiting for the fault under way, if any")
                if now >= next_report:
                    next_report = now + 30
                    by_kind = Counter(f.kind for f in faults.done)
                    log(f"  {now - load_began:.0f} s: {len(accepted.jobs)} jobs accepted, "
                        f"{sum(accepted.answers.values())} answers ({sum(n for a, n in accepted.answers.items() if ' 503' in a)} "
                        f"503), faults {dict(by_kind)}")
                if now > limit:
                    raise RuntimeError("the client or fault threads did not stop in time")
        finally:
            stop.set()
        load_seconds = time.monotonic() - load_began

        # Every program running again, the topology whole, then every accepted job finished.
        host.wait_running(timeout=120)
        master = cluster.master()
        if not faults.errors:
            cluster.wait_healthy(master, what="the Redis topology to be whole at the end")
        unplanned(events, faults, config, log, elapsed)
        client = cluster.master_client(socket_timeout=30)
        resolve_unresolved(client, accepted)
        if accepted.unresolved:
            log(f"  {len(accepted.unresolved)} request(s) never answered 202; settled by their Idempotency-Key: "
                f"{dict(accepted.resolved)}")
        drain_seconds, states = wait_drained(client, accepted, config.drain_timeout, log)
        monitor.stop()
        rng = random.Random(f"{config.seed}-check")
        failures, figures, runs = check(client, urls, accepted, states, faults, rng, load_began_wall)
        if states is None:
            failures.insert(0, f"not drained within {config.drain_timeout:g} s")
        figures["master at the end"] = master
        try:
            figures["redis used_memory MB"] = round(client.info("memory")["used_memory"] / 2**20, 1)
        except Exception:  # a figure, not a check
            pass
        rss = monitor.growth(load_began + config.warmup, load_began + load_seconds)
        rss_failures = memory_failures(rss, config)
        # A never-killed process the sampler did not find would make the memory check one
        # that cannot fail (it happened when the web processes' command line changed).
        measured = {row.program for row in rss if row.protected}
        rss_failures += [f"{program}: no RSS measured (not found among the host's processes)"
                         for program in PROTECTED if program not in measured]
        return Result(config, failures, rss_failures, rss, accepted, faults, kinds, skipped, cluster.placement,
                      figures, load_seconds, drain_seconds, time.monotonic() - began, load_began_wall, workdir, runs)
    finally:
        try:
            host.stop()
        finally:
            if events:
                events.stop()
            cluster.stop()


def summary(result):
    """The report, as text."""
    a, c, f = result.accepted, result.config, result.figures
    by_queue = Counter(queue for queue, _ in a.jobs.values())
    kills = result.kills
    redis_faults = [fault for fault in result.faults.done if fault.kind in REDIS_FAULTS]
    lines = [
        "",
        f"soak summary (seed {c.seed})",
        f"  load {result.load_seconds:.0f} s, drain {result.drain_seconds:.1f} s, total {result.total_seconds:.0f} s",
        f"  Redis: {result.placement}; master at the end: {f.get('master at the end')}, "
        f"used_memory {f.get('redis used_memory MB')} MB",
        "  faults: " + ", ".join(f"{FAULT_NAMES[kind]} {len(result.faults.of(kind))}" for kind in FAULT_KINDS
                                 if kind in result.kinds)
        + "".join(f"; {FAULT_NAMES[kind]} skipped: {why}" for kind, why in result.skipped.items()),
        f"    worker kill -9 by program: {dict(Counter(k.what.split(' pid')[0] for k in kills))}",
    ]
    worker_reruns = sum(len(k.reruns) for k in kills)
    lines.append(f"    re-runs given to worker kills (the job counts a crash): {worker_reruns}; to each Redis fault:")
    failovers = result.faults.of("failover")
    if failovers:
        lines.append(f"    unplanned failovers (the Sentinels', no fault of the soak): {len(failovers)}")
    for fault in redis_faults:
        healed = f", healed after {fault.healed - fault.began:.1f} s" if fault.healed else ""
        delays = (f" (new starts {min(fault.reruns):.1f}-{max(fault.reruns):.1f} s after it began)"
                  if fault.reruns else "")
        lines.append(
            f"    +{fault.began - result.load_began:6.1f} s  {FAULT_NAMES[fault.kind]:15} {fault.what}: promoted after "
            f"{fault.promoted - fault.began:.1f} s{healed}, whole again after {fault.recovered - fault.began:.1f} s; "
            f"re-run window {fault.ended - fault.began:.1f} s; re-runs it explains: {len(fault.reruns)}{delays}")
    lines += [
        f"  requests accepted: {dict(a.requests)}",
        f"  answers by status: {dict(sorted(a.answers.items()))}",
        f"  resent {a.resent} (lost answer or 503), replayed {a.replayed}, never answered 202 {len(a.unresolved)} "
        f"(settled by key: {dict(a.resolved)}); jobs named by outcome_unknown: {f.get('unknown named')} "
        f"({f.get('unknown accepted')} of them accepted in the end, the rest never kept)",
        f"  jobs accepted: {len(a.jobs)} {dict(by_queue)}; ledger entries: {f.get('ledger entries')}; "
        f"lost: {f.get('lost')}",
        f"  {f.get('runs_report')}",
        f"    crashes counted by the sweep (a dead worker's job): {f.get('crashes')}; retries of runs that raised: {f.get('retries')}; "
        f"re-run jobs in flight at a Redis fault: {f.get('rerun_at_redis_faults')}; runs a cut-off master alone "
        f"kept, merged: {f.get('cut_off_merged')}",
        f"    re-runs no fault explains: {len(f.get('unexplained') or [])} {(f.get('unexplained') or [])[:5]}; "
        f"beyond once per crash (no Redis fault): {len(f.get('beyond_crashes') or [])} "
        f"{(f.get('beyond_crashes') or [])[:5]}",
        "  memory (MB): RSS after warm-up -> end (max), growth; over the second half of the load (judged); "
        "anonymous part of RSS (heap, stacks) after warm-up -> end:",
    ]
    for row in result.rss:
        growth = row.end - row.base
        note = "  (never killed: checked)" if row.protected else "" if row.original else "  (restarted after a kill)"
        lines.append(f"    {row.program:22} {row.role:6} pid {row.pid:<7} {row.base:7.1f} -> {row.end:7.1f} "
                     f"(max {row.top:6.1f})  {growth:+6.1f} MB {growth / row.base * 100:+6.1f} %; second half "
                     f"{row.second_half:+5.1f} MB; anonymous {row.anon_base:6.1f} -> {row.anon_end:6.1f}{note}")
    if result.failures:
        lines.append("FAILED guarantees:")
        lines += [f"  - {failure}" for failure in result.failures]
    else:
        lines.append("guarantees held: 0 lost (one ledger entry per accepted order, none other); no job stuck; "
                     "re-runs only of jobs in flight at a fault, and at most once per crash where only workers died")
    if result.rss_failures:
        lines.append(f"memory not flat (second half > {c.flat_mb:g} MB) or grew grossly "
                     f"(> {c.rss_max_percent:g} % and > {c.rss_max_mb:g} MB):")
        lines += [f"  - {failure}" for failure in result.rss_failures]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="foodapp soak: mixed load with worker kill -9s, master kill -9s and host partitions")
    parser.add_argument("--seconds", type=float, default=300, help="how long the load runs (default 300)")
    parser.add_argument("--faults", default=",".join(FAULT_KINDS),
                        help="comma-separated fault kinds: worker, master, partition, or none (default: all; "
                             "partition only where network namespaces can be made, else skipped, saying so)")
    parser.add_argument("--workers", type=int, default=3, help="queue workers (default 3; workers_00 is never killed)")
    parser.add_argument("--threads", type=int, default=2, help="threads per worker process (default 2)")
    parser.add_argument("--clients", type=int, default=3, help="client threads (default 3)")
    parser.add_argument("--rate", type=float, default=12.0, help="requests a second, all clients (default 12)")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 8.0), metavar=("MIN", "MAX"),
                        help="seconds between two worker kill -9s, uniformly at random (default 2 8)")
    parser.add_argument("--redis-fault-every", type=float, nargs=2, default=(20.0, 40.0), metavar=("MIN", "MAX"),
                        help="seconds from one Redis fault's recovery to the next (default 20 40)")
    parser.add_argument("--partition-hold", type=float, nargs=2, default=(1.0, 4.0), metavar=("MIN", "MAX"),
                        help="seconds a partition lasts after the far side promoted the replica (default 1 4)")
    parser.add_argument("--loopback", action="store_true",
                        help="Redis on 127.0.0.1 even where namespaces could be made (no partition faults)")
    parser.add_argument("--seed", type=int, default=None, help="the seed of faults and load (default: random, printed)")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder even when everything held")
    args = parser.parse_args(argv)
    faults = tuple(kind.strip() for kind in args.faults.split(",") if kind.strip() and kind.strip() != "none")
    unknown = set(faults) - set(FAULT_KINDS)
    if unknown:
        parser.error(f"--faults: unknown kind(s) {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}, none")
    if args.workers < 2:
        parser.error("--workers must be at least 2 (workers_00 is never killed; another one is)")
    for name in ("kill_every", "redis_fault_every", "partition_hold"):
        low, high = getattr(args, name)
        if not 0 < low <= high:
            parser.error(f"--{name.replace('_', '-')} MIN MAX: 0 < MIN <= MAX")
    config = Config(seconds=args.seconds, workers=args.workers, threads=args.threads, clients=args.clients,
                    rate=args.rate, faults=faults, kill_every=tuple(args.kill_every),
                    redis_fault_every=tuple(args.redis_fault_every), partition_hold=tuple(args.partition_hold),
                    namespaces=not args.loopback, seed=args.seed)
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
