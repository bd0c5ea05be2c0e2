"""The RQ side of bench/others.py, run with var/bench-venvs/rq's python (rq is not in foodapp's venv).

`python -m bench.rq_jobs enqueue N` puts N no-op jobs on the queue "bench" of
$BENCH_REDIS_URL; `rq worker ... bench` runs them. Each job increments bench:done.
"""
import os
import sys

import redis

QUEUE = "bench"
COUNTER = "bench:done"
_client = None


def noop():
    global _client
    if _client is None:  # one connection per worker process, made on its first job
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    _client.incr(COUNTER)


def enqueue(jobs, chunk=1000):
    from rq import Queue

    connection = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    queue = Queue(QUEUE, connection=connection)
    for start in range(0, jobs, chunk):
        # result_ttl=0: no result kept, like Dramatiq without a results middleware.
        queue.enqueue_many([Queue.prepare_data("bench.rq_jobs.noop", result_ttl=0)
                            for _ in range(min(chunk, jobs - start))])


if __name__ == "__main__":
    assert sys.argv[1] == "enqueue", sys.argv
    enqueue(int(sys.argv[2]))
