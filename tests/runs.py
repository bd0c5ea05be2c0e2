"""How many times each job ran, read from its timeline, and the bound on re-runs.

The ledger keeps the first entry of a job and ignores the rest, so a job run twice looks
like a job run once there. Every run writes a ``started`` event to the job's timeline
(``foodapp:job:<id>:events``), so the drills count those. A job may start again only if it
was in flight when something died (a worker, a host, the master): ARCHITECTURE.md.
"""
import json
from dataclasses import dataclass, field

from foodapp.jobs import events_key, status_key

#: Events store their time to the millisecond; a start written in the millisecond of a kill
#: must still count as before it.
ROUNDING = 0.001


@dataclass
class Runs:
    """One job's runs: when each started, when it was done (epoch seconds), its crash count,
    and the worker (host:pid) of each start, for the failure messages."""
    starts: list
    done: list
    crashes: int
    workers: list = field(default_factory=list)
    timeline: list = field(default_factory=list)   # "event@at worker", for the failure messages
    #: For each start, whether a retry was stored since the start before it: a run that
    #: raised is retried by design (jobs.max_retries), which is not a job run twice.
    retries: list = field(default_factory=list)

    def __len__(self):
        return len(self.starts)


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def read_runs(client, job_ids, chunk=500):
    """{job_id: Runs} for ``job_ids``, read in pipelined chunks (bytes or str clients)."""
    job_ids = list(job_ids)
    found = {}
    for first in range(0, len(job_ids), chunk):
        part = job_ids[first:first + chunk]
        with client.pipeline(transaction=False) as pipe:
            for job_id in part:
                pipe.lrange(events_key(job_id), 0, -1)
                pipe.hget(status_key(job_id), "crashes")
            replies = pipe.execute()
        for job_id, events, crashes in zip(part, replies[::2], replies[1::2]):
            events = [json.loads(_text(event)) for event in events]
            started = [e for e in events if e.get("event") == "started"]
            retries, retried = [], False
            for event in events:
                if event.get("event") == "retrying":
                    retried = True
                elif event.get("event") == "started":
                    retries.append(retried)
                    retried = False
            found[job_id] = Runs(
                starts=[float(e["at"]) for e in started],
                done=[float(e["at"]) for e in events if e.get("event") == "done"],
                crashes=int(_text(crashes) or 0),
                workers=[e.get("worker_name") for e in started],
                timeline=[f"{e.get('event')}@{e.get('at')} {e.get('worker_name') or e.get('worker') or ''}".strip()
                          for e in events],
                retries=retries,
            )
    return found


def merge(*readings):
    """One {job_id: Runs} from readings of several servers (an isolated old master and the new
    one): a run whose events only the old master kept, and lost when it rejoined, still counts.
    Events both hold (replicated before the split) count once."""
    merged = {}
    for reading in readings:
        for job_id, run in reading.items():
            known = merged.setdefault(job_id, Runs([], [], 0))
            by_start = {**_by_start(known), **_by_start(run)}
            known.starts = sorted(by_start)
            known.workers = [by_start[start][0] for start in known.starts]
            known.retries = [by_start[start][1] for start in known.starts]
            known.done = sorted(set(known.done) | set(run.done))
            known.crashes = max(known.crashes, run.crashes)
            known.timeline = known.timeline + [entry for entry in run.timeline if entry not in known.timeline]
    return merged


def _by_start(run):
    """{start time: (worker, whether a retry came before it)} of one reading."""
    workers = run.workers if len(run.workers) == len(run.starts) else [""] * len(run.starts)
    retries = run.retries if len(run.retries) == len(run.starts) else [False] * len(run.starts)
    return {start: (worker, retried) for start, worker, retried in zip(run.starts, workers, retries)}


def counts(runs):
    """{job_id: number of starts}."""
    return {job_id: len(run) for job_id, run in runs.items()}


def rerun(runs):
    """The ids of the jobs that started more than once, sorted."""
    return sorted(job_id for job_id, run in runs.items() if len(run) > 1)


def report(runs, limit=10):
    """'runs: N, re-run: M jobs [ids...]' for a summary line."""
    again = rerun(runs)
    shown = again[:limit] + (["..."] if len(again) > limit else [])
    return f"runs: {sum(counts(runs).values())}, re-run: {len(again)} jobs {shown}"


def _window(kill):
    """A kill as (began, ended) wall-clock seconds; a single time.time() is both."""
    return (kill, kill) if isinstance(kill, (int, float)) else tuple(kill)


def unexplained(runs, kills):
    """{job_id: Runs} of the jobs whose re-runs no kill explains.

    Each start after the first needs a kill between it and the start before: the earlier
    run began before the kill ended, was not done before the kill began, and the new one
    began after the kill began. And no job starts more than once per kill, plus once.
    """
    windows = [_window(kill) for kill in kills]
    bad = {}
    for job_id, run in runs.items():
        retried = run.retries[1:] if len(run.retries) == len(run.starts) else [False] * (len(run) - 1)
        if len(run) - sum(retried) > 1 + len(windows):
            bad[job_id] = run
            continue
        retries_left = 0
        for previous, start, retry in zip(run.starts, run.starts[1:], retried):
            retries_left += retry
            if any(previous <= ended + ROUNDING and began <= start + ROUNDING
                   and not any(previous <= done < began for done in run.done)
                   for began, ended in windows):
                continue  # in flight at a kill
            if retries_left:
                # The retry of a run that raised, stored before this start: not always the
                # next start (a run that raised at a failover may also be given back by
                # the sweep, and that copy may start before the retry is due).
                retries_left -= 1
                continue
            bad[job_id] = run
            break
    return bad


def describe(bad, limit=10):
    return "; ".join(f"{job_id}: starts {run.starts} by {run.workers}, done {run.done}, crashes {run.crashes}, "
                     f"timeline {run.timeline}" for job_id, run in sorted(bad.items())[:limit])


def assert_reruns_only_at_kills(runs, kills):
    """Every re-run is of a job that was in flight at one of ``kills``.

    ``kills``: the wall-clock time (time.time()) of each kill, or (before, after) pairs taken
    around a kill that takes a while.
    """
    bad = unexplained(runs, kills)
    assert not bad, (f"{len(bad)} job(s) started again without being in flight at a kill "
                     f"(kills at {[_window(k) for k in kills]}): {describe(bad)}")


def assert_reruns_only_after_crashes(runs):
    """Worker kills only: a job starts at most once more than the crashes its status counts.

    The sweep counts a crash for each job a dead worker was running, and only then gives it
    back; any other second start is a job run twice.
    """
    bad = {job_id: run for job_id, run in runs.items() if len(run) - sum(run.retries[1:]) > run.crashes + 1}
    assert not bad, f"{len(bad)} job(s) started more often than once per crash, plus once: {describe(bad)}"
