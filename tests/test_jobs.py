"""What workers do with jobs: one ledger entry per job, retries with backoff, dead letters."""
import json

import dramatiq
import pytest

from tests.conftest import drain, start_worker
from tests.servers import wait_until


def declare_test_actor(broker, name, fn, **options):
    return dramatiq.Actor(fn, broker=broker, actor_name=name, queue_name="comer", priority=0, options=options)


def test_a_job_run_twice_writes_one_ledger_entry(app, broker, worker, redis_client):
    accepted = app.get("/comer/tomate", status=202).json
    drain(broker, worker)
    message = json.loads(app.get(accepted["status_url"]).text)
    assert message["result"]["recorded_now"] is True

    # The same job again, as after a worker crash: same job id, new delivery.
    original = dramatiq.Message(
        queue_name="comer", actor_name="comer", args=("tomate",), kwargs={}, options={},
        message_id=accepted["job_id"],
    )
    broker.enqueue(original)
    drain(broker, worker)

    assert redis_client.hlen("foodapp:ledger") == 1
    assert redis_client.hget("foodapp:ledger:totals", "comer:tomate") == "1"
    rerun = app.get(accepted["status_url"]).json
    assert rerun["state"] == "done" and rerun["result"]["recorded_now"] is False


def test_a_transient_error_is_retried_with_backoff_until_it_works(app, broker, worker):
    attempts = []

    def flaky(item):
        attempts.append(item)
        if len(attempts) < 3:
            raise ConnectionError("the oven is not hot yet")
        return "cooked"

    actor = declare_test_actor(broker, "flaky", flaky)
    message = actor.send("pan")
    drain(broker, worker)

    job = app.get(f"/api/jobs/{message.message_id}").json
    assert len(attempts) == 3
    assert job["state"] == "done" and job["result"] == "cooked" and job["retries"] == 2
    events = [event["event"] for event in job["events"]]
    assert events.count("retrying") == 2 and events.count("error") == 2
    assert "the oven is not hot yet" in job["error"]


def test_a_job_that_keeps_failing_is_dead_lettered(app, broker, worker, redis_client):
    def broken(item):
        raise ValueError(f"no recipe for {item}")

    actor = declare_test_actor(broker, "broken", broken)
    message = actor.send("piedra")
    drain(broker, worker)

    job = app.get(f"/api/jobs/{message.message_id}").json
    assert job["state"] == "dead"
    assert job["error"] == "ValueError: no recipe for piedra"
    assert job["retries"] == 2  # testing.ini: jobs.max_retries = 2
    assert redis_client.zcard("dramatiq:comer.XQ") == 1
    assert redis_client.hlen("dramatiq:comer.msgs") == 0


def test_an_error_the_actor_throws_on_purpose_is_failed_not_retried(app, broker, worker):
    class NotOnTheMenu(Exception):
        pass

    def picky(item):
        raise NotOnTheMenu(item)

    actor = declare_test_actor(broker, "picky", picky, throws=(NotOnTheMenu,))
    message = actor.send("caracoles")
    drain(broker, worker)
    job = app.get(f"/api/jobs/{message.message_id}").json
    assert job["state"] == "failed" and job["retries"] == 0


def test_the_time_limit_stops_a_job_that_runs_too_long(app, broker, worker):
    import time

    def slow(item):
        time.sleep(5)

    actor = declare_test_actor(broker, "slow", slow, time_limit=200, max_retries=0)
    message = actor.send("cocido")
    drain(broker, worker)
    job = app.get(f"/api/jobs/{message.message_id}").json
    assert job["state"] == "dead" and "TimeLimitExceeded" in job["error"]


def test_a_job_redis_thinks_this_worker_holds_but_it_does_not_is_given_back(app, broker, redis_client):
    # As after a failover that kept a fetch but lost what followed, or a fetch whose reply
    # never arrived: the job sits in this live worker's ack set, and nothing runs it.
    accepted = app.get("/beber/rioja", status=202).json
    rid = redis_client.lpop("dramatiq:beber")
    redis_client.sadd(f"dramatiq:__acks__.{broker.broker_id}.beber", rid)

    worker = start_worker(broker)
    try:
        done = wait_until(lambda: (j := app.get(accepted["status_url"]).json)["state"] == "done" and j,
                          15, "the orphaned job to be given back and done")
    finally:
        worker.stop()
    assert done["result"]["item"] == "rioja"
    assert redis_client.hlen("foodapp:ledger") == 1


def test_an_idle_worker_gives_back_an_orphan_too(app, broker, redis_client):
    # Each consumer checks its own queue between fetches; an idle one spends its time
    # blocked on the wake-up list, and must still get round to it. The orphan is written
    # straight into Redis (no queue entry, no wake-up), as a lost fetch reply leaves it.
    worker = start_worker(broker)
    try:
        wait_until(lambda: redis_client.zscore("dramatiq:__heartbeats__", broker.broker_id), 10, "the worker to beat")
        message = broker.get_actor("comer").message("migas").copy(options={"redis_message_id": "orphan-1"})
        redis_client.hset("dramatiq:comer.msgs", "orphan-1", message.encode())
        redis_client.sadd(f"dramatiq:__acks__.{broker.broker_id}.comer", "orphan-1")
        entry = wait_until(lambda: redis_client.hget("foodapp:ledger", message.message_id), 15,
                           "the orphaned job to be given back and run")
    finally:
        worker.stop()
    assert json.loads(entry)["item"] == "migas"
    assert not redis_client.smembers(f"dramatiq:__acks__.{broker.broker_id}.comer")


def test_a_delay_queue_consumer_lets_go_of_its_messages_only_when_dramatiq_drops_them(app, broker, redis_server):
    # Dramatiq's consumer thread empties its in-memory delay queue after a connection
    # error, and keeps it after any other error; what the consumer holds must follow suit,
    # or the orphan check would give back a message that is still going to be enqueued.
    app.get("/comer/pan?delay=60", status=202)
    consumer = broker.consume("comer.DQ", prefetch=10, timeout=100)
    assert next(consumer) is not None
    assert len(broker.holdings.held("comer.DQ")) == 1
    consumer.close()  # as after an unexpected error: Dramatiq still has the message
    assert len(broker.holdings.held("comer.DQ")) == 1

    consumer = broker.consume("comer.DQ", prefetch=10, timeout=100)
    redis_server.stop()
    with pytest.raises(dramatiq.errors.ConnectionClosed):
        next(consumer)
    consumer.close()  # as after a connection error: Dramatiq dropped it
    assert broker.holdings.held("comer.DQ") == set()


def test_a_consumer_closed_with_fetched_messages_lets_them_go_back(app, broker, redis_client):
    # Dramatiq drops a consumer after a connection error (a failover) and starts another:
    # what the old one had fetched but not yet handed to a worker thread must not stay
    # "held" by this worker, or nothing would ever run it while the worker lives.
    job_ids = [app.get(f"/comer/plato{i}", status=202).json["job_id"] for i in range(3)]
    consumer = broker.consume("comer", prefetch=3, timeout=100)
    first = next(consumer)
    assert first.message_id == job_ids[0]
    consumer.close()
    assert broker.holdings.held("comer") == {first.options["redis_message_id"]}

    consumer = broker.consume("comer", prefetch=3, timeout=100)
    again = [next(consumer), next(consumer)]  # the new consumer gives the two back first
    assert {m.message_id for m in again} == set(job_ids[1:])
    assert redis_client.llen("dramatiq:comer") == 0
    consumer.close()


def test_a_pipeline_runs_its_next_step_with_the_result_and_each_step_has_its_status(app, broker, worker,
                                                                                    redis_client):
    # Dramatiq's pipelines (its Pipelines middleware, which foodapp runs in a leaner form):
    # each step's message is sent when the one before it is done, with its result.
    seen = []
    declare_test_actor(broker, "second_course", lambda eaten: seen.append(eaten["item"]))
    first = broker.get_actor("comer").message("sopa")
    second = broker.get_actor("second_course").message()
    dramatiq.pipeline([first, second]).run()
    drain(broker, worker)
    wait_until(lambda: seen, 10, "the pipeline's second step to run")
    assert seen == ["sopa"]
    assert redis_client.hgetall(f"foodapp:job:{first.message_id}")["state"] == "done"
    # The next step is a job of its own, sent by the worker, with its own status record.
    statuses = [key for key in redis_client.scan_iter("foodapp:job:*") if not key.endswith(":events")]
    states = sorted(redis_client.hget(key, "state") for key in statuses)
    assert states == ["done", "done"], states
