"""Where an idle worker's pickup time goes: `.venv/bin/python -m bench.pickup_stages [samples]`.

One job at a time (after a 20 ms pause) on an idle foodapp worker (1 thread), each stage in
milliseconds from just before the enqueue, as the bench's pickup figure counts: the send
returned (in this process); then in the worker, the fetch that took it, the consumer
thread putting it on Dramatiq's work queue and then building its next blocking call (the
worker thread needs the GIL it holds), a worker thread taking it, JobStatus's `running`
written, the job running. Medians and 90th percentiles. On a private redis-server
(127.0.0.1, a free port).

Then what Redis spent on each script call of that path (median µs, from SLOWLOG with every
command logged, which adds a few µs to each): the enqueue, the fetch behind the wake-up, the
start, the done (after the job: off the path). Told apart by their first key and key count.
"""
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import run  # noqa: E402
from bench.probes import QUEUE  # noqa: E402
from foodapp.jobs import SHARED  # noqa: E402

STAGES = ("sent", "fetched", "put", "blocks", "thread", "before", "started", "runs")


def measure(samples=200):
    with tempfile.TemporaryDirectory() as here:
        server = run.RedisServer(here).start()
        try:
            broker = run.broker_for("foodapp", server.url)
            import bench.stage_actors as stage_actors  # declares `staged` on that broker
            env = {"FOODAPP_REDIS_URL": server.url, "FOODAPP_INI": str(run.TESTING_INI), "PYTHONPATH": str(ROOT)}
            worker = run.Process([run.BIN / "dramatiq", "foodapp.worker", "bench.stage_actors", "--processes", 1,
                                  "--threads", 1, "--queues", stage_actors.QUEUE], Path(here) / "worker.log",
                                 env=env).start()
            try:
                client, staged = server.client(), broker.get_actor("staged")
                staged.send(time.time())  # warm up
                if client.blpop(["bench:stages"], timeout=60) is None:
                    raise AssertionError(f"the worker did not start:\n{worker.output()[-2000:]}")
                rows = []
                client.config_set("slowlog-log-slower-than", 0)
                client.config_set("slowlog-max-len", 20 * samples)
                client.slowlog_reset()
                for _ in range(samples):
                    time.sleep(0.02)
                    began = time.time()
                    staged.send(began)
                    sent = (time.time() - began) * 1000
                    taken = client.blpop(["bench:stages"], timeout=4)
                    if taken is None:
                        raise AssertionError("a probe did not run within 4 s")
                    rows.append({"sent": sent, **json.loads(taken[1])})
                scripts = _script_times(client.slowlog_get(20 * samples))
            finally:
                worker.stop()
        finally:
            server.stop()
    found = {}
    for stage in STAGES:
        # "blocks" is missing when the consumer's next call was a fetch, not a wait, or came
        # after the job had run.
        seen = sorted(r[stage] for r in rows if stage in r)
        if seen:
            found[stage] = (statistics.median(seen), seen[int(len(seen) * 0.9)], len(seen))
    return found, scripts


def _script_times(entries):
    """Median µs of each script call of the pickup's path, from SLOWLOG entries."""
    calls = {}
    for entry in entries:
        command = entry["command"]
        # One space between words: an empty argument (the hot path's shared parts have some) is
        # an empty word, not one fewer.
        words = (command.decode(errors="replace") if isinstance(command, bytes) else command).split(" ")
        if words[0].lower() != "evalsha":
            continue
        keys = int(words[2])
        if keys == 0:  # commit.lua with the hot path's writes only ("s", "f")
            kinds = _commit_kinds(words[3:])
            name = {("s",): "start", ("f",): "done"}.get(tuple(kinds), "start+done")
            calls.setdefault(name, []).append(entry["duration"])
            continue
        key = words[3]
        if ":__acks__." in key:  # commit.lua: each write's kind first ("start", "finish")
            kinds = [w for w in words[3 + keys:] if w in ("start", "finish")]
            name = {1: "start" if kinds[0] == "start" else "done"}.get(len(kinds), "start+done")
        elif key == f"dramatiq:{QUEUE}":
            name = "enqueue" if keys >= 7 else "fetch"
        else:
            continue
        calls.setdefault(name, []).append(entry["duration"])
    return {name: (statistics.median(times), len(times)) for name, times in calls.items()}


def _commit_kinds(argv):
    """The kinds of the writes in a commit.lua call's ARGV (the hot path's "s" and "f",
    after the shared parts); SLOWLOG keeps the first 32 words of a command, so a long call
    shows only its first writes."""
    kinds, at = [], 1 + int(argv[0]) * SHARED
    while at < len(argv) and argv[at] in ("s", "f"):
        kinds.append(argv[at])
        at += 7 if argv[at] == "s" else 9
    return kinds or ["?"]


if __name__ == "__main__":
    found, scripts = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
    print("stage, ms from just before the enqueue: median, 90th percentile, samples")
    for stage in STAGES:
        if stage in found:
            print(f"  {stage:8s} {found[stage][0]:6.3f} {found[stage][1]:6.3f} {found[stage][2]:6d}")
    print("Redis, µs a call (median; SLOWLOG), calls seen")
    for name in ("enqueue", "fetch", "start", "done", "start+done"):
        if name in scripts:
            print(f"  {name:8s} {scripts[name][0]:6.0f} {scripts[name][1]:6d}")
