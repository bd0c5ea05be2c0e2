"""Where an idle worker's pickup time goes: `.venv/bin/python -m bench.pickup_stages [samples]`.

One job at a time (after a 20 ms pause) on an idle foodapp worker (1 thread), each stage in
milliseconds from just before the enqueue, as the bench's pickup figure counts: the send
returned (in this process); then in the worker, the fetch that took it, a worker thread
taking it, JobStatus's `running` written, the job running. Medians and 90th percentiles.
On a private redis-server (127.0.0.1, a free port).
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

STAGES = ("sent", "fetched", "thread", "before", "started", "runs")


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
                for _ in range(samples):
                    time.sleep(0.02)
                    began = time.time()
                    staged.send(began)
                    sent = (time.time() - began) * 1000
                    taken = client.blpop(["bench:stages"], timeout=4)
                    if taken is None:
                        raise AssertionError("a probe did not run within 4 s")
                    rows.append({"sent": sent, **json.loads(taken[1])})
            finally:
                worker.stop()
        finally:
            server.stop()
    return {stage: (statistics.median(r[stage] for r in rows),
                    sorted(r[stage] for r in rows)[int(len(rows) * 0.9)]) for stage in STAGES}


if __name__ == "__main__":
    found = measure(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
    print("stage, ms from just before the enqueue: median, 90th percentile")
    for stage in STAGES:
        print(f"  {stage:8s} {found[stage][0]:6.3f} {found[stage][1]:6.3f}")
