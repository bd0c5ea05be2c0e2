"""What the worker's scripts cost Redis, counted by Redis itself (INFO commandstats).

Each command a script runs costs Redis its own call overhead (arguments turned into Redis
objects, the command looked up and run, its reply turned back into Lua), which is most of
what a job costs Redis: so a fetch takes any number of messages in the same few commands,
and a start or a done reads the job's status fields in one command. Counts, not times:
they are the same on any machine.
"""
from foodapp import jobs
from foodapp.consumer import acks_key


def _calls(client):
    return {name[len("cmdstat_"):]: stats["calls"] for name, stats in client.info("commandstats").items()}


def spent(client, action):
    """The commands Redis ran for ``action`` (each name: how many times), and its result."""
    before = _calls(client)
    result = action()
    after = _calls(client)
    commands = {name: calls - before.get(name, 0) for name, calls in after.items() if calls > before.get(name, 0)}
    commands["info"] -= 1  # the reading of ``before``
    return {name: calls for name, calls in commands.items() if calls}, result


def order(app, count):
    return [app.get(f"/comer/plato{i}", status=202).json["job_id"] for i in range(count)]


def test_a_fetch_of_thirty_two_messages_costs_redis_the_commands_a_fetch_of_one_does(app, broker, redis_client):
    ordered = order(app, 40)
    consumer = broker.consume("comer", prefetch=64, timeout=100)
    try:
        consumer._fetch(0)  # loads the script (a first call also runs SCRIPT LOAD)
        one, first = spent(redis_client, lambda: consumer._fetch(1))
        many, rest = spent(redis_client, lambda: consumer._fetch(32))
    finally:
        consumer.close()
    # Counted both ways: the messages came, in their order, and each only once.
    assert [m.message_id for m in first + rest] == ordered[:33]
    assert redis_client.llen("dramatiq:comer") == 7
    assert redis_client.scard(acks_key(broker, "comer")) == 33
    assert many == one, f"a fetch of 32 messages ran {many}, a fetch of one {one}"


def test_a_start_and_a_done_each_read_the_job_status_in_one_command(app, broker, redis_client):
    [job_id] = order(app, 1)
    consumer = broker.consume("comer", prefetch=1, timeout=100)
    try:
        [message] = consumer._fetch(1)
    finally:
        consumer.close()
    rid, acks = message.options["redis_message_id"], acks_key(broker, "comer")
    messages = f"{broker.namespace}:comer.msgs"
    change = broker.jobs.running(job_id, jobs.now(), broker.broker_id, "host:1", 1, 0, "d.1")
    start, started = spent(redis_client, lambda: broker.jobs.start(acks, rid, "d.1", change, 0, 0, messages))
    done = broker.jobs.done(job_id, broker.broker_id, "comer", 0.01, None)
    finish, finished = spent(redis_client, lambda: broker.jobs.finish(acks, messages, rid, done))
    assert (started, finished) == (1, 1)
    assert redis_client.hget(f"foodapp:job:{job_id}", "state") == "done"
    assert not redis_client.sismember(acks, rid) and not redis_client.hexists(messages, rid)
    for name, commands in (("start", start), ("done", finish)):
        reads = {command: calls for command, calls in commands.items() if command in ("hget", "hmget", "hgetall")}
        assert reads == {"hmget": 1}, f"a {name} read the job's status with {reads}: {commands}"


def test_a_fetch_larger_than_a_slice_takes_every_message_in_order_and_nothing_twice(app, broker, redis_client):
    # fetch.lua takes a large count in slices of 1000 (Lua's unpack has a limit).
    comer = broker.get_actor("comer")
    stored = [m.message_id for m in broker.enqueue_many([(comer.message(f"plato{i}"), None) for i in range(1500)])]
    consumer = broker.consume("comer", prefetch=2000, timeout=100)
    try:
        taken = consumer._fetch(1600)
    finally:
        consumer.close()
    assert [m.message_id for m in taken] == stored
    assert redis_client.llen("dramatiq:comer") == 0
    assert redis_client.scard(acks_key(broker, "comer")) == 1500
