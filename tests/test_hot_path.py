"""The worker's hot path (JobStore.running and JobStore.done, FifoMessageProxy) builds the same
writes and answers the same questions as the general code it stands in for."""
import time
from unittest import mock

import pytest
from dramatiq import Message

from foodapp import jobs
from foodapp.consumer import FifoMessageProxy


class _Store(jobs.JobStore):
    def __init__(self, ttl):  # no Redis: only the building of changes is under test
        self.ttl = ttl


@pytest.mark.parametrize("worker_name", ["host:1234", "hôte \"cité\":1", ""])
def test_running_is_change_running(worker_name):
    store = _Store(3600)
    for retries in (0, 2):
        general = store.change("job-1", "running", event="started", started_at="1733520000.125", worker="w1",
                               worker_name=worker_name, worker_pid=4321, retries=retries, delivery="w1.7")
        fast = store.running("job-1", "1733520000.125", "w1", worker_name, 4321, retries, "w1.7")
        assert fast == general


@pytest.mark.parametrize("seconds,result", [(0.0004, None), (0.3, {"plato": "listo"}), (1000.0, [1, "é"])])
def test_done_is_change_done(seconds, result):
    store = _Store(3600)
    clock = 1733520059.9996  # the finish and its minute come from one reading of the clock
    with mock.patch.object(time, "time", return_value=clock):
        general = store.change("job-1", "done", event="done", only_from="running", only_worker="w1",
                               counts=[*jobs.outcome("comer", "done"), *jobs.duration("comer", seconds)],
                               finished_at=jobs.now(), result=jobs.encode(result))
        fast = store.done("job-1", "w1", "comer", seconds, result)
    assert fast == general


def test_every_bucket_is_the_first_bound_at_or_above_the_run_time():
    for seconds in (0, 0.005, 0.0051, 0.3, 299.9, 300.0, 300.1, 1e9):
        expected = next((f"{bound:g}" for bound in jobs.DURATION_BUCKETS if seconds <= bound), "+Inf")
        assert jobs.duration("q", seconds)[0] == (f"{jobs.DURATIONS_PREFIX}q", expected, 1)


def test_a_proxy_reads_its_message_and_compares_by_fetch_order():
    message = Message(queue_name="comer", actor_name="comer", args=("plato",), kwargs={}, options={"retries": 1})
    first, second = FifoMessageProxy(message), FifoMessageProxy(message.copy())
    for name in ("queue_name", "actor_name", "args", "kwargs", "options", "message_id", "message_timestamp"):
        assert getattr(first, name) == getattr(message, name)
    first.options["retries"] = 2  # Retries changes the message's own options
    assert message.options["retries"] == 2
    assert first < second and not second < first
    assert first != second and first == first
    assert (0, first) < (0, second)  # what Dramatiq's work queue compares
    assert FifoMessageProxy(message, fetched=first._fetched) == first  # handed back, handed out again
    assert first == message  # a proxy still equals its message, as Dramatiq's do


def test_per_minute_counts_keep_their_expiry_without_an_expire_per_job(redis_server, redis_client):
    import redis

    client = redis.Redis.from_url(redis_server.url)
    store = jobs.JobStore(client, 3600)
    acks = "dramatiq:__acks__.w1.comer"
    minute = f"{jobs.MINUTE_PREFIX}{int(time.time() // 60)}"
    # A minute's hash made by someone else without an expiry: the first count of a new
    # field sets it (a new hash is always a new field).
    redis_client.hset(minute, "beber:done", 7)
    answered = []
    for n in range(3):
        job_id = f"job-{n}"
        redis_client.sadd(acks, f"rid-{n}")
        change = store.running(job_id, jobs.now(), "w1", "host:1", 1, 0, f"d-{n}")
        assert store.start(acks, f"rid-{n}", f"d-{n}", change, 0, 0) == 1
        store.finish(acks, "dramatiq:comer.msgs", f"rid-{n}", store.done(job_id, "w1", "comer", 0.001, None),
                     then=answered.append)
        store.commits.flush()
    # Written in this minute, or the next one if the clock turned meanwhile.
    minutes = [key for key in redis_client.keys(f"{jobs.MINUTE_PREFIX}*") if redis_client.hget(key, "comer:done")]
    assert answered == [None] * 3
    assert sum(int(redis_client.hget(key, "comer:done")) for key in minutes) == 3
    for key in minutes:
        assert 0 < redis_client.ttl(key) <= 7200
    assert redis_client.hget(jobs.STATS, "comer:done") == "3"
    assert redis_client.hget(f"{jobs.DURATIONS_PREFIX}comer", "count") == "3"
    assert redis_client.hget(f"{jobs.DURATIONS_PREFIX}comer", "0.005") == "3"
    assert float(redis_client.hget(f"{jobs.DURATIONS_PREFIX}comer", "sum")) == pytest.approx(0.003)
    client.close()
