"""Group commit (foodapp/commits.py): many threads' starts and dones in few Redis calls,
each written exactly once, its answer to the thread that asked, nothing left unwritten."""
import threading

import pytest
import redis

from foodapp import jobs
from tests.servers import wait_until

THREADS = 8
JOBS_PER_THREAD = 150


@pytest.fixture
def store(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    yield jobs.JobStore(client, 3600)
    client.close()


def start_change(store, job_id):
    return store.change(job_id, "running", event="started", worker="w1", started_at=jobs.now(),
                        delivery=f"d-{job_id}")


def done_change(store, job_id):
    return store.change(job_id, "done", event="done", only_from="running", only_worker="w1",
                        counts=jobs.outcome("comer", "done"), finished_at=jobs.now(), result="null")


class Answers:
    """What the dones' ``then`` was called with, and the writing threads' errors."""

    def __init__(self):
        self.answered, self.errors, self._lock = [], [], threading.Lock()

    def then(self, error):
        with self._lock:
            self.answered.append(error)


def run_writers(work, answers, expected):
    """``work(t)`` in THREADS threads at once; then no thread failed, and each of the
    ``expected`` dones was answered without an error."""
    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not answers.errors
    wait_until(lambda: len(answers.answered) == expected, 10, "every done to be answered")
    assert answers.answered == [None] * expected


def test_concurrent_starts_and_dones_are_each_written_once_in_fewer_calls(store, redis_client):
    acks = "dramatiq:__acks__.w1.comer"
    job_ids = [f"job-{t}-{i}" for t in range(THREADS) for i in range(JOBS_PER_THREAD)]
    redis_client.sadd(acks, *[f"rid-{job_id}" for job_id in job_ids])
    answers = Answers()

    def work(t):
        try:
            for i in range(JOBS_PER_THREAD):
                job_id = f"job-{t}-{i}"
                assert store.start(acks, f"rid-{job_id}", f"d-{job_id}", start_change(store, job_id), 0, 0) == 1
                assert redis_client.hget(jobs.status_key(job_id), "state") == "running"
                store.finish(acks, "dramatiq:comer.msgs", f"rid-{job_id}", done_change(store, job_id), then=answers.then)
        except Exception as error:  # reported below, with the thread's job
            answers.errors.append(error)

    # The last dones go with no start after them: the flusher writes them.
    run_writers(work, answers, len(job_ids))

    assert redis_client.scard(acks) == 0
    states = {job_id: redis_client.hget(jobs.status_key(job_id), "state") for job_id in job_ids}
    assert set(states.values()) == {"done"}
    for job_id in job_ids[:50]:
        events = redis_client.lrange(jobs.events_key(job_id), 0, -1)
        assert [e.split('"event":"')[1].split('"')[0] for e in events] == ["started", "done"]
    assert redis_client.hget(jobs.STATS, "comer:done") == str(len(job_ids))

    commits = store.commits
    assert commits.writes == 2 * len(job_ids)
    assert commits.calls < commits.writes, "no two writes ever went in one call"


def test_hot_path_writes_of_two_queues_and_two_workers_share_calls_and_each_lands_once(store, redis_client):
    """jobs.Started and jobs.Done (the worker's hot path) go with what they share sent once a
    call: writes of different queues and worker identities in the same calls, and general
    changes beside them, each land on its own job, counted on its own queue."""
    queues, workers = ("comer", "beber"), (("w1", "host:1", 11), ("w2", "hôte:2", 22))
    job_ids = [f"job-{t}-{i}" for t in range(THREADS) for i in range(JOBS_PER_THREAD)]
    for t in range(THREADS):
        queue, (worker, *_) = queues[t % 2], workers[t // 2 % 2]
        redis_client.sadd(f"dramatiq:__acks__.{worker}.{queue}", *[f"rid-job-{t}-{i}" for i in range(JOBS_PER_THREAD)])
    answers = Answers()

    def work(t):
        queue, (worker, name, pid) = queues[t % 2], workers[t // 2 % 2]
        acks, messages = f"dramatiq:__acks__.{worker}.{queue}", f"dramatiq:{queue}.msgs"
        try:
            for i in range(JOBS_PER_THREAD):
                job_id = f"job-{t}-{i}"
                general = t == THREADS - 1 and i % 2  # one thread mixes in general changes
                change = store.change(job_id, "running", event="started", worker=worker, worker_name=name,
                                      worker_pid=pid, delivery=f"d-{job_id}") if general else \
                    store.running(job_id, jobs.now(), worker, name, pid, 0, f"d-{job_id}")
                assert store.start(acks, f"rid-{job_id}", f"d-{job_id}", change, 0, 0, messages) == 1
                store.finish(acks, messages, f"rid-{job_id}", store.done(job_id, worker, queue, 0.001, None),
                             then=answers.then)
        except Exception as error:  # reported below
            answers.errors.append(error)

    run_writers(work, answers, len(job_ids))
    for t in range(THREADS):
        queue, (worker, name, pid) = queues[t % 2], workers[t // 2 % 2]
        assert redis_client.scard(f"dramatiq:__acks__.{worker}.{queue}") == 0
        for i in (0, 1, JOBS_PER_THREAD - 1):
            record = redis_client.hgetall(jobs.status_key(f"job-{t}-{i}"))
            assert (record["state"], record["worker"], record["worker_name"], record["worker_pid"]) == (
                "done", worker, name, str(pid)), record
    per_queue = JOBS_PER_THREAD * THREADS // 2
    assert redis_client.hgetall(jobs.STATS) == {"comer:done": str(per_queue), "beber:done": str(per_queue)}
    assert store.commits.calls < store.commits.writes == 2 * len(job_ids)


def test_a_lone_done_is_written_without_a_start_to_carry_it(store, redis_client):
    acks = "dramatiq:__acks__.w1.comer"
    redis_client.sadd(acks, "rid-1")
    assert store.start(acks, "rid-1", "d-1", start_change(store, "job-1"), 0, 0) == 1
    answered = []
    store.finish(acks, "dramatiq:comer.msgs", "rid-1", done_change(store, "job-1"), then=answered.append)
    wait_until(lambda: answered, 10, "the done to be written by the flusher")
    assert answered == [None]
    assert redis_client.hget(jobs.status_key("job-1"), "state") == "done"


def test_flush_writes_the_waiting_dones_at_once(store, redis_client):
    store.commits.linger = 60  # the flusher would not come in time: flush() must
    acks = "dramatiq:__acks__.w1.comer"
    redis_client.sadd(acks, "rid-1", "rid-2")
    answered = []
    for n in (1, 2):
        store.start(acks, f"rid-{n}", f"d-{n}", start_change(store, f"job-{n}"), 0, 0)
        store.finish(acks, "dramatiq:comer.msgs", f"rid-{n}", done_change(store, f"job-{n}"), then=answered.append)
    store.commits.flush()
    assert answered == [None, None]
    assert redis_client.scard(acks) == 0


def test_a_failed_call_answers_every_write_in_it_with_the_error(store, redis_server, redis_client):
    acks = "dramatiq:__acks__.w1.comer"
    redis_client.sadd(acks, "rid-1")
    store.commits.linger = 60
    answered = []
    store.finish(acks, "dramatiq:comer.msgs", "rid-1", done_change(store, "job-1"), then=answered.append)
    redis_server.stop()
    with pytest.raises(redis.ConnectionError):
        store.start(acks, "rid-2", "d-2", start_change(store, "job-2"), 0, 0)
    assert len(answered) == 1 and isinstance(answered[0], redis.ConnectionError)


def test_when_redis_goes_away_under_concurrent_writes_every_thread_gets_an_answer(store, redis_server,
                                                                                  redis_client):
    # A group is sent for the next writer before it wakes (it reads the replies): a send or
    # a read that fails must still answer every write of the group, and leave no thread
    # waiting for a writer that will not come.
    acks = "dramatiq:__acks__.w1.comer"
    job_ids = [f"job-{t}-{i}" for t in range(THREADS) for i in range(JOBS_PER_THREAD)]
    redis_client.sadd(acks, *[f"rid-{job_id}" for job_id in job_ids])
    started, failed, other = [], [], []
    lock = threading.Lock()

    def work(t):
        for n in range(100_000):  # until Redis goes away; bounded all the same
            job_id = f"job-{t}-{n % JOBS_PER_THREAD}"
            try:
                reply = store.start(acks, f"rid-{job_id}", f"d-{job_id}-{n}", start_change(store, job_id), 0, 0)
            except redis.ConnectionError:
                with lock:
                    failed.append(job_id)
                return
            except Exception as error:
                other.append(error)
                return
            with lock:
                started.append((job_id, reply))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(started) >= 200, 30, "200 starts to be written")
    redis_server.stop()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a thread still waits for its write"
    assert not other, other
    # Each thread stopped at its first failure: one failure a thread, every start before it written.
    assert len(failed) == THREADS
    assert all(reply == 1 for _, reply in started)
