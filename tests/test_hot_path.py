"""The worker's hot path (JobStore.running and JobStore.done, FifoMessageProxy) builds the same
writes and answers the same questions as the general code it stands in for."""
import time
from unittest import mock

import pytest
from dramatiq import Message

from foodapp import jobs
from foodapp.consumer import FifoMessageProxy


def _written(redis_client, job_id):
    """What Redis holds of a job, its counters and the worker's ack set."""
    return (redis_client.hgetall(jobs.status_key(job_id)), redis_client.lrange(jobs.events_key(job_id), 0, -1),
            redis_client.ttl(jobs.status_key(job_id)) > 0, redis_client.ttl(jobs.events_key(job_id)) > 0)


def _counters(redis_client, queue):
    minutes = {key: redis_client.hgetall(key) for key in redis_client.keys(f"{jobs.MINUTE_PREFIX}*")}
    return (redis_client.hgetall(jobs.STATS), redis_client.hgetall(f"{jobs.DURATIONS_PREFIX}{queue}"), minutes)


@pytest.fixture
def store(redis_server):
    import redis

    client = redis.Redis.from_url(redis_server.url)
    yield jobs.JobStore(client, 3600)
    client.close()


def _held(redis_client, *rids):
    redis_client.sadd("dramatiq:__acks__.w1.comer", *rids)
    redis_client.hset("dramatiq:comer.msgs", mapping={rid: "{}" for rid in rids})


@pytest.mark.parametrize("worker_name", ["host:1234", "hôte \"cité\":1", "", None])
def test_a_hot_path_start_writes_what_the_general_change_does(store, redis_client, worker_name):
    """JobStore.running (a jobs.Started: commit.lua builds its transition from a few strings)
    leaves Redis holding exactly what the general change() does."""
    acks, messages = "dramatiq:__acks__.w1.comer", "dramatiq:comer.msgs"
    for retries in (0, 2):
        general, fast = f"job-g{retries}", f"job-f{retries}"
        _held(redis_client, f"rid-{general}", f"rid-{fast}")
        change = store.change(general, "running", event="started", started_at="1733520000.125", worker="w1",
                              worker_name=worker_name, worker_pid=4321, retries=retries, delivery="w1.7")
        assert store.start(acks, f"rid-{general}", "w1.7", change, 0, 0, messages) == 1
        started = store.running(fast, "1733520000.125", "w1", worker_name, 4321, retries, "w1.7")
        assert isinstance(started, jobs.Started) == bool(worker_name)
        assert store.start(acks, f"rid-{fast}", "w1.7", started, 0, 0, messages) == 1
        assert _written(redis_client, fast) == _written(redis_client, general)
        # The same start again (a retry whose answer was lost) changes nothing.
        assert store.start(acks, f"rid-{fast}", "w1.7", started, 0, 0, messages) == 1
        assert _written(redis_client, fast) == _written(redis_client, general)


@pytest.mark.parametrize("seconds,result", [(0.0004, None), (0.3, {"plato": "listo"}), (1000.0, [1, "é"])])
def test_a_hot_path_done_writes_what_the_general_change_does(redis_server, store, redis_client, seconds, result):
    """JobStore.done (a jobs.Done) leaves the job and every counter as the general change()
    does: the same counts for one job, in the same minute (one reading of the clock)."""
    acks, messages = "dramatiq:__acks__.w1.comer", "dramatiq:comer.msgs"
    clock = 1733520059.9996
    seen = []
    for job_id, fast in (("job-g", False), ("job-f", True)):
        redis_client.flushdb()  # a private server (the redis_server fixture): each way from nothing
        _held(redis_client, f"rid-{job_id}")
        started = store.running(job_id, "1733520000.125", "w1", "host:1", 1, 0, "d.1")
        assert store.start(acks, f"rid-{job_id}", "d.1", started, 0, 0, messages) == 1
        with mock.patch.object(time, "time", return_value=clock):
            change = store.done(job_id, "w1", "comer", seconds, result) if fast else store.change(
                job_id, "done", event="done", only_from="running", only_worker="w1",
                counts=[*jobs.outcome("comer", "done"), *jobs.duration("comer", seconds)],
                finished_at=jobs.now(), result=jobs.encode(result))
        assert isinstance(change, jobs.Done) == fast
        assert store.finish(acks, messages, f"rid-{job_id}", change) == 1
        # Acknowledged with it; a second finish (a retried ack) writes and counts nothing.
        assert not redis_client.sismember(acks, f"rid-{job_id}") and not redis_client.hexists(messages, f"rid-{job_id}")
        assert store.finish(acks, messages, f"rid-{job_id}", change) == 0
        seen.append((_written(redis_client, job_id), _counters(redis_client, "comer")))
    assert seen[0] == seen[1]
    assert seen[1][0][0]["state"] == "done" and seen[1][1][0] == {"comer:done": "1"}


def test_a_hot_path_done_is_refused_to_another_worker_as_the_general_one_is(store, redis_client):
    acks, messages = "dramatiq:__acks__.w1.comer", "dramatiq:comer.msgs"
    _held(redis_client, "rid-1")
    assert store.start(acks, "rid-1", "d.1", store.running("job-1", jobs.now(), "w1", "host:1", 1, 0, "d.1"),
                       0, 0, messages) == 1
    assert store.finish(acks, messages, "rid-1", store.done("job-1", "w2", "comer", 0.1, None)) == 0
    assert redis_client.hget(jobs.status_key("job-1"), "state") == "running"
    assert redis_client.hget(jobs.STATS, "comer:done") is None


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
