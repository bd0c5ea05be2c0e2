"""A worker holds on to a job whose writes Redis does not take, however long that lasts; and a
time when nobody could reach Redis does not make live workers look dead."""
import json
import time

import dramatiq

from foodapp import jobs
from foodapp.heartbeat import SWEEP_CLOCK
from tests.conftest import drain
from tests.servers import wait_until


def test_a_retry_redis_does_not_take_for_a_while_is_held_on_to_not_dropped(app, broker, worker, redis_client):
    """Redis blocks writes for longer than enqueue.retry_seconds (0.3 s) and the client's
    socket timeout (2 s): the worker keeps the failed job, and its retry, until Redis takes it."""
    attempts = []

    def oven(item):
        attempts.append(item)
        if len(attempts) == 1:
            # Every write from now on waits 4 s (the retry's store, the ack...), then runs.
            redis_client.execute_command("CLIENT", "PAUSE", 4000, "WRITE")
            raise ConnectionError("the oven went out")
        return "cooked"

    actor = dramatiq.Actor(oven, broker=broker, actor_name="oven", queue_name="comer", priority=0, options={})
    message = actor.send("pan")
    # Reads go on during the pause (drain's queue checks are scripts, which wait).
    wait_until(lambda: app.get(f"/api/jobs/{message.message_id}").json["state"] == "done", 60, "the job to be done")
    drain(broker, worker, timeout=60)

    job = app.get(f"/api/jobs/{message.message_id}").json
    assert attempts == ["pan", "pan"]
    assert job["state"] == "done" and job["result"] == "cooked" and job["retries"] == 1
    events = [event["event"] for event in job["events"]]
    assert events.count("started") == 2 and events.count("retrying") == 1, events
    assert not redis_client.hlen("dramatiq:comer.msgs") and not redis_client.hlen("dramatiq:comer.DQ.msgs")


def sweep(broker, now_ms, timeout_ms=5000):
    script = broker.client.register_script(jobs.composed("sweep", "wake"))
    return script(keys=[broker.namespace, jobs.STATUS_PREFIX, jobs.WORKER_PREFIX, SWEEP_CLOCK],
                  args=[now_ms, timeout_ms, 3, 3600, 3600_000, timeout_ms // 2, "comer"])


def held_by(redis_client, worker_id, rid, job_id):
    redis_client.zadd("dramatiq:__heartbeats__", {worker_id: int(time.time() * 1000) - 20_000})
    redis_client.sadd(f"dramatiq:__acks__.{worker_id}.comer", rid)
    message = {"queue_name": "comer", "actor_name": "comer", "args": ["pan"], "kwargs": {}, "options": {},
               "message_id": job_id, "message_timestamp": 1}
    redis_client.hset("dramatiq:comer.msgs", rid, json.dumps(message))


def test_after_a_time_nobody_could_reach_redis_live_workers_get_a_whole_timeout_to_beat(broker, redis_client):
    now = int(time.time() * 1000)
    # The last sweep ran 20 s ago, as did the last beat of a worker holding a job: Redis was
    # out of reach (a failover) for all that time, for that worker as for every other.
    redis_client.hset(SWEEP_CLOCK, "last", now - 20_000)
    held_by(redis_client, "w1", "rid-1", "job-1")

    assert sweep(broker, now) == [0, 0, 0]
    assert redis_client.sismember("dramatiq:__acks__.w1.comer", "rid-1")
    for later in (1000, 2000, 3000, 4000):   # sweeps every second, within the timeout since Redis came back
        assert sweep(broker, now + later) == [0, 0, 0]
    # The worker never beat again in a whole timeout of Redis being reachable: it is dead.
    assert sweep(broker, now + 5000) == [1, 0, 1]
    assert redis_client.lrange("dramatiq:comer", 0, -1) == ["rid-1"]
    # With a wake token, as an enqueue leaves: an idle worker takes it at once.
    assert redis_client.llen("dramatiq:comer.wake") == 1


def test_the_sweeps_keep_their_own_clock_from_the_first_one(broker, redis_client):
    """Nothing set up by hand: the first sweep on a new Redis writes down when it ran, so a
    failover after it (nobody beats, nobody sweeps for longer than the gap) gives live
    workers a whole timeout to beat again. (The clock was never written when absent: every
    sweep read "now" for the last one, no gap was ever seen, and a slow failover made live
    workers look dead: seen in CI, where their jobs were given back while they held them.)"""
    now = int(time.time() * 1000)
    redis_client.zadd("dramatiq:__heartbeats__", {"w1": now})
    assert sweep(broker, now) == [0, 0, 0]
    assert redis_client.hget(SWEEP_CLOCK, "last") == str(now)
    # Redis out of reach for 20 s: nobody beat or swept. w1 is alive, its beat 20 s old.
    held_by(redis_client, "w1", "rid-1", "job-1")
    assert sweep(broker, now + 20_000) == [0, 0, 0]
    assert redis_client.sismember("dramatiq:__acks__.w1.comer", "rid-1")
    # Sweeps every second once Redis is back (other workers'): w1 still has its timeout.
    for later in (21_000, 22_000, 23_000, 24_000):
        assert sweep(broker, now + later) == [0, 0, 0]
    # Silent for a whole timeout since: now it is dead.
    assert sweep(broker, now + 25_000) == [1, 0, 1]


def test_without_a_gap_a_silent_worker_is_swept_after_the_timeout_and_a_stopped_one_at_once(broker, redis_client):
    now = int(time.time() * 1000)
    redis_client.hset(SWEEP_CLOCK, "last", now - 1000)
    held_by(redis_client, "w1", "rid-1", "job-1")
    assert sweep(broker, now) == [1, 0, 1]

    # After a gap, a worker that said it stopped (heartbeat 0) is swept at once all the same.
    redis_client.hset(SWEEP_CLOCK, "last", now - 60_000)
    held_by(redis_client, "w2", "rid-2", "job-2")
    redis_client.zadd("dramatiq:__heartbeats__", {"w2": 0})
    assert sweep(broker, now) == [1, 0, 1]


def test_a_job_starts_only_while_its_message_is_still_this_workers(broker, redis_client):
    """start.lua fences a worker that was cut off: once the sweep or the orphan check gave a
    message back, the worker that fetched it before must not start it."""
    acks = "dramatiq:__acks__.w1.comer"

    def start(delivery):
        change = broker.jobs.change("job-1", "running", event="started", worker="w1", delivery=delivery)
        return broker.jobs.start(acks, "rid-1", delivery, change, 0, 100)

    assert start("d1") == -1, "started a job whose message is not in the worker's ack set"
    assert redis_client.hget("foodapp:job:job-1", "state") is None

    redis_client.sadd(acks, "rid-1")
    assert start("d2") == 1
    assert redis_client.hget("foodapp:job:job-1", "state") == "running"
    # The same start again (its first answer lost) writes no second `started` event.
    assert start("d2") == 1
    events = [json.loads(e)["event"] for e in redis_client.lrange("foodapp:job:job-1:events", 0, -1)]
    assert events == ["started"]


def test_an_enqueue_tried_again_stores_nothing_twice_even_after_its_first_copy_ran(broker, redis_client):
    """A store that no replica confirmed is tried again; meanwhile a worker may have taken
    the first copy and finished it (found by the host-A drill: a retry ran twice)."""
    message = broker.get_actor("comer").message("pan").copy(options={"redis_message_id": "rid-x"})
    keys, args = broker._record(message, None, False)
    head = [3600, 1, "", 0, "", ""]
    assert broker._enqueue(keys=keys, args=head + args) == [b"stored", b"1"]
    # A worker takes it and finishes it: it leaves the queue and the messages hash.
    assert redis_client.lpop("dramatiq:comer") == "rid-x"
    redis_client.hdel("dramatiq:comer.msgs", "rid-x")

    assert broker._enqueue(keys=keys, args=head + args) == [b"stored", b"0"]
    assert redis_client.llen("dramatiq:comer") == 0 and not redis_client.hlen("dramatiq:comer.msgs")
    events = [json.loads(e)["event"] for e in redis_client.lrange(f"foodapp:job:{message.message_id}:events", 0, -1)]
    assert events == ["queued"]


def test_a_message_given_back_while_still_in_this_workers_hands_is_not_handed_out_twice(app, broker, redis_client):
    """A slow failover: the sweep on the new master gives back a message that a live worker
    had fetched and handed to its threads (its heartbeat was silent for the timeout), and the
    same worker fetches it again. Its ack set then holds the message again, so start.lua's
    fence would let both copies start: the second fetch must not hand out a copy of a
    message this process already holds. (Seen in CI: a job started twice by one worker, 4 ms
    apart, in test_a_slow_failover_loses_no_running_job_and_leaves_none_running.)"""
    [job_id] = [app.get("/comer/pan", status=202).json["job_id"]]
    consumer = broker.consume("comer", prefetch=8, timeout=100)
    try:
        [first] = consumer._fetch(1)  # handed to the worker threads, not started yet
        rid = first.options["redis_message_id"]
        acks = f"dramatiq:__acks__.{broker.broker_id}.comer"
        # This worker looks dead to a sweep (its last beat 20 s ago, Redis up all along).
        now = int(time.time() * 1000)
        redis_client.hset(SWEEP_CLOCK, "last", now - 1000)
        redis_client.zadd("dramatiq:__heartbeats__", {broker.broker_id: now - 20_000})
        assert sweep(broker, now) == [1, 0, 1]
        assert redis_client.lrange("dramatiq:comer", 0, -1) == [rid]

        again = consumer._fetch(8)
        assert again == [], "the same message was handed out a second time"
        # Taken from the queue into this worker's ack set: this worker's to run, once.
        assert redis_client.llen("dramatiq:comer") == 0 and redis_client.sismember(acks, rid)
    finally:
        consumer.close()

    # The copy the threads had starts (its message is this worker's again) and finishes.
    delivery = f"{broker.broker_id}.1"
    started = broker.jobs.running(job_id, jobs.now(), broker.broker_id, "host:1", 1, 0, delivery)
    assert broker.jobs.start(acks, rid, delivery, started, 0, 0, "dramatiq:comer.msgs") == 1
    assert broker.jobs.finish(acks, "dramatiq:comer.msgs", rid, broker.jobs.done(job_id, broker.broker_id, "comer",
                                                                                  0.01, None)) == 1
    assert not redis_client.sismember(acks, rid) and redis_client.hget(f"foodapp:job:{job_id}", "state") == "done"
