"""Job status records in Redis: what the status API reads and the workers write.

Each job has a hash ``foodapp:job:<job_id>`` (state, queue, actor, args, timestamps,
worker, result or error) and a list ``foodapp:job:<job_id>:events`` (its timeline). Both
expire after ``jobs.status_ttl`` seconds, counted from the last change.
"""
import json
import time
from datetime import datetime, timezone
from importlib import resources

from foodapp.commits import GroupCommit

STATUS_PREFIX = "foodapp:job:"
WORKER_PREFIX = "foodapp:worker:"
#: Counters for the metrics: "<queue>:<outcome>" -> count, outcome in OUTCOMES.
STATS = "foodapp:stats"
OUTCOMES = ("done", "failed", "dead", "retried", "crashed")
#: Job run time histogram per queue: "foodapp:durations:<queue>", fields are bucket
#: upper bounds (seconds, "+Inf"), plus "sum" and "count".
DURATIONS_PREFIX = "foodapp:durations:"
#: How many strings one shared part of a group call has (commit.lua): what the hot path's
#: starts and dones of a worker and a queue share (JobStore.start, JobStore.finish).
SHARED = 8
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

#: Every state a job can be in, in the order a job usually goes through them.
STATES = ("scheduled", "queued", "running", "retrying", "done", "failed", "dead", "cancelled")

_TIMESTAMPS = ("enqueued_at", "eta", "started_at", "finished_at")
_INTEGERS = ("retries", "crashes", "worker_pid")
_JSON = ("args", "kwargs", "result")


def lua(name):
    """The text of one of the Lua scripts shipped in foodapp/lua/."""
    return resources.files("foodapp").joinpath("lua", f"{name}.lua").read_text()


def composed(name, *functions, constants=None):
    """A script with other scripts before it as its functions ``transition(KEYS, ARGV)``
    (always) and ``<name>(KEYS, ARGV)`` for each of ``functions``, and ``constants`` (name:
    string) as its local variables. Redis scripts cannot import one another; this is how
    they share one text, and the key names Python gives them."""
    parts = [f"local {constant} = {json.dumps(value)}\n" for constant, value in (constants or {}).items()]
    parts += [f"local function {part}(KEYS, ARGV)\n{lua(part)}\nend\n" for part in ("transition", *functions)]
    return "".join(parts) + lua(name)


def status_key(job_id):
    return f"{STATUS_PREFIX}{job_id}"


def events_key(job_id):
    return f"{STATUS_PREFIX}{job_id}:events"


def batch_key(batch_id):
    return f"foodapp:batch:{batch_id}"


def now():
    return f"{time.time():.3f}"


# One encoder for every record: json.dumps with options builds a new one per call.
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def encode(value):
    return _encoder.encode(value)


def flatten(fields):
    """Turn a dict into the field/value list HSET takes, dropping None values."""
    flat = []
    for name, value in fields.items():
        if value is not None:
            flat += [name, value]
    return flat


def iso(epoch):
    """Epoch seconds (as stored) to ISO 8601 in UTC, to the millisecond."""
    moment = datetime.fromtimestamp(float(epoch), timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: What every start of a worker process writes: (worker, worker_name, worker_pid) -> its
#: event's tail, made once (JobStore.running).
_RUNNING_TAILS = {}


class Started:
    """A job's ``running`` start as the worker's hot path writes it (JobStore.running): only
    what differs from one job to the next. commit.lua builds from it, and from what every
    start of the worker process shares (sent once a group call), the transition that
    ``change(job_id, "running", ...)`` describes."""
    __slots__ = ("job_id", "started_at", "retries", "worker", "worker_name", "worker_pid", "tail")

    def __init__(self, job_id, started_at, retries, worker, worker_name, worker_pid, tail):
        self.job_id, self.started_at, self.retries = job_id, started_at, retries
        self.worker, self.worker_name, self.worker_pid, self.tail = worker, worker_name, worker_pid, tail


class Done:
    """A job's ``done`` as the worker's hot path writes it (JobStore.done), the same way."""
    __slots__ = ("job_id", "worker", "queue", "finished_at", "seconds", "bucket", "minute", "result")

    def __init__(self, job_id, worker, queue, finished_at, seconds, bucket, minute, result):
        self.job_id, self.worker, self.queue, self.finished_at = job_id, worker, queue, finished_at
        self.seconds, self.bucket, self.minute, self.result = seconds, bucket, minute, result


class JobStore:
    """Reads and writes job status records; one per broker."""

    def __init__(self, client, ttl):
        self.client = client
        self.ttl = ttl
        self._transition = client.register_script(lua("transition"))
        # Starts and dones of concurrent worker threads, grouped into one call (commits.py).
        self.commits = GroupCommit(client, client.register_script(composed(
            "commit", "start", "finish", constants={"STATUS_PREFIX": STATUS_PREFIX, "STATS": STATS,
                                                   "MINUTE_PREFIX": MINUTE_PREFIX,
                                                   "DURATIONS_PREFIX": DURATIONS_PREFIX, "SHARED": SHARED})))

    def transition(self, job_id, state, **change):
        """Set ``state`` and fields on a job, only if it is in one of ``only_from``.

        Takes what ``change`` does; returns 1 if the job moved, 0 if it was left alone.
        """
        return self.apply(self.change(job_id, state, **change))

    def apply(self, change):
        """Make a change built by ``change()``; 1 if the job moved, 0 if it was left alone."""
        keys, args = change
        return self._transition(keys=keys, args=args)

    def change(self, job_id, state, *, event, only_from="", only_worker="", counts=(), **fields):
        """The keys and arguments of transition.lua for one change of state.

        ``only_from`` ("a,b") and ``only_worker`` guard it; ``counts`` are (hash, field,
        amount) increments made only if the transition is; ``fields`` go in the record.
        """
        event = encode({"event": event, "at": fields.get("finished_at") or fields.get("started_at") or now(),
                        **{k: fields[k] for k in ("worker_name", "error") if fields.get(k)}})
        increments = [part for count in counts for part in count]
        args = [self.ttl, only_from, only_worker, event, len(counts), *increments,
                *flatten({"state": state, **fields})]
        return [status_key(job_id), events_key(job_id)], args

    def running(self, job_id, started_at, worker, worker_name, worker_pid, retries, delivery):
        """``change(job_id, "running", event="started", started_at=..., worker=...,
        worker_name=..., worker_pid=..., retries=..., delivery=...)``, for ``start()``, built
        for the worker's hot path: a Started, which commit.lua turns into the same
        transition. The group call carries what every start of the worker process shares
        once, and each start the five strings that are its own (a fifth of what the general
        change takes: hiredis packing them, and Redis making them into strings, were the
        largest part of a start's cost after its commands). ``delivery`` goes to ``start()``."""
        if not worker_name or not isinstance(worker_name, str):
            return self.change(job_id, "running", event="started", started_at=started_at, worker=worker,
                               worker_name=worker_name, worker_pid=worker_pid, retries=retries, delivery=delivery)
        tail = _RUNNING_TAILS.get((worker, worker_name, worker_pid))
        if tail is None:
            tail = _RUNNING_TAILS[(worker, worker_name, worker_pid)] = "," + encode({"worker_name": worker_name})[1:]
        return Started(job_id, started_at, retries, worker, worker_name, worker_pid, tail)

    def done(self, job_id, worker, queue, seconds, result):
        """``change(job_id, "done", event="done", only_from="running", only_worker=worker,
        counts=[*outcome(queue, "done"), *duration(queue, seconds)], finished_at=now(),
        result=encode(result))``, for ``finish()``, built for the worker's hot path: a Done,
        which commit.lua turns into the same transition (see ``running``). One clock
        reading for the finish and its minute."""
        at = time.time()
        return Done(job_id, worker, queue, f"{at:.3f}", f"{seconds:.6f}", _bucket(seconds), int(at // 60),
                    "null" if result is None else encode(result))

    def start(self, acks_key, redis_message_id, delivery, change, replicas, timeout_ms, messages_key=None):
        """Mark a job running if its message is still in ``acks_key`` (start.lua): 1, else -1;
        -2 if it was cancelled (then its message is acknowledged, from ``messages_key`` too).
        ``change`` is ``running()``'s, or any ``change()``.

        With ``replicas``, the start counts only once that many replicas have it (``WAIT``
        on the same connection), else NotReplicated: a master cut off from its replica must
        not start a job that the other side may run too. Grouped with other threads' writes.
        """
        if isinstance(change, Started):
            # commit.lua's "s": its shared part (the context) and its own.
            shared = (self.ttl, acks_key, messages_key or "", "", change.worker, change.worker_name,
                      change.worker_pid, change.tail)
            return self.commits.write("s", None, (redis_message_id, change.job_id, change.started_at, change.retries,
                                                  delivery), replicas, timeout_ms, shared=shared)
        keys, args = change
        return self.commits.write("start", [acks_key, *keys, *([messages_key] if messages_key else [])],
                                  [redis_message_id, delivery, *args], replicas, timeout_ms)

    def finish(self, acks_key, messages_key, redis_message_id, change, then=None):
        """Acknowledge a message and apply ``change`` (``done()``'s, or any ``change()``) to
        its job, atomically (finish.lua). Its reply; or, with ``then``, at once, and
        ``then(error or None)`` once Redis answered. Grouped with other threads' writes."""
        if isinstance(change, Done):
            shared = (self.ttl, acks_key, messages_key, change.queue, change.worker, "", "", "")
            return self.commits.write("f", None, (redis_message_id, change.job_id, change.finished_at, change.seconds,
                                                  change.bucket, change.minute, change.result), then=then, shared=shared)
        keys, args = change
        return self.commits.write("finish", [acks_key, messages_key, *keys], [redis_message_id, *args], then=then)

    def get(self, job_id):
        """The job's status as a JSON-ready dict, or None when unknown or expired."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(status_key(job_id))
            pipe.lrange(events_key(job_id), 0, -1)
            raw, events = pipe.execute()
        if not raw:
            return None
        # Leaving out bookkeeping: start.lua's delivery token, enqueue.lua's stored message ids
        # and the id of the delayed message the job waits for.
        job = {key.decode(): value.decode() for key, value in raw.items()
               if key not in (b"delivery", b"delayed") and not key.startswith(b"stored:")}
        for name in _TIMESTAMPS:
            if name in job:
                job[name] = iso(job[name])
        for name in _INTEGERS:
            if name in job:
                job[name] = int(job[name])
        for name in _JSON:
            if name in job:
                job[name] = json.loads(job[name])
        job["events"] = [json.loads(event) for event in events]
        for event in job["events"]:
            if "at" in event:
                event["at"] = iso(str(event["at"]))
        return job

    def batch(self, batch_id):
        """A batch's record with how many of its jobs are in each state, or None."""
        raw = self.client.get(batch_key(batch_id))
        if raw is None:
            return None
        batch = json.loads(raw)
        with self.client.pipeline(transaction=False) as pipe:
            for job_id in batch["job_ids"]:
                pipe.hget(status_key(job_id), "state")
            states = [state.decode() if state else "expired" for state in pipe.execute()]
        counts = {}
        for state in states:
            counts[state] = counts.get(state, 0) + 1
        batch["created_at"] = iso(batch["created_at"])
        batch.update(total=len(states), done=counts.get("done", 0), states=counts,
                     finished=all(state in ("done", "failed", "dead", "expired") for state in states))
        return batch


MINUTE_PREFIX = "foodapp:minute:"


def outcome(queue, name):
    """The increments of one outcome: its counter, and this minute's (for the ops page)."""
    return [(STATS, f"{queue}:{name}", 1), (f"{MINUTE_PREFIX}{int(time.time() // 60)}", f"{queue}:{name}", 1)]


def duration(queue, seconds):
    """The increments that put one run time in its queue's histogram."""
    key = f"{DURATIONS_PREFIX}{queue}"
    return [(key, _bucket(seconds), 1), (key, "sum", f"{seconds:.6f}"), (key, "count", 1)]


_BUCKETS = tuple((bound, f"{bound:g}") for bound in DURATION_BUCKETS)


def _bucket(seconds):
    """The histogram field a run time goes in: its bucket's upper bound, as the metrics name it."""
    for bound, name in _BUCKETS:
        if seconds <= bound:
            return name
    return "+Inf"
