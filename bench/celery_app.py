"""The Celery side of bench/others.py, run with var/bench-venvs/celery's python (celery is not
in foodapp's venv).

`python -m bench.celery_app enqueue N` sends N no-op tasks to the queue "bench" of
$BENCH_REDIS_URL; `celery -A bench.celery_app worker --queues bench` runs them. Each task
increments bench:done. No result backend, results ignored.
"""
import os
import sys

import redis
from celery import Celery

QUEUE = "bench"
COUNTER = "bench:done"

app = Celery("bench", broker=os.environ["BENCH_REDIS_URL"])
app.conf.update(
    result_backend=None,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
)
_client = None


@app.task(name="bench.noop", ignore_result=True)
def noop():
    global _client
    if _client is None:  # one connection per pool process, made on its first task
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    _client.incr(COUNTER)


def enqueue(jobs):
    with app.producer_or_acquire() as producer:
        for _ in range(jobs):
            noop.apply_async(producer=producer)


if __name__ == "__main__":
    assert sys.argv[1] == "enqueue", sys.argv
    enqueue(int(sys.argv[2]))
