"""Concurrent requests' enqueues go to Redis in one call (foodapp/enqueues.py), each with
its own outcome.

To make a group for certain, Redis is paused (CLIENT PAUSE WRITE) while the first store is
in flight: the next ones wait behind it, and are sent together once Redis answers.
"""
import threading

import dramatiq
import pytest

from foodapp.broker import EnqueueUnavailable, IdempotencyConflict, Replay
from tests.conftest import make_app
from tests.servers import RedisServer, wait_until


def evalsha_calls(client):
    """EVALSHAs Redis ran (not the NOSCRIPT answers that make redis-py load a script first)."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return stats.get("calls", 0) - stats.get("failed_calls", 0) - stats.get("rejected_calls", 0)


class Orders:
    """Threads each storing one order through the broker, as web threads do."""

    def __init__(self, broker):
        self.broker = broker
        self.threads, self.outcomes = [], {}

    def send(self, name, idempotency=None):
        message = self.broker.get_actor("comer").message(name)

        def run():
            try:
                self.broker.enqueue_many([(message, None)], idempotency=idempotency)
                self.outcomes[name] = ("stored", message.message_id)
            except Exception as error:  # the outcome the test reads
                self.outcomes[name] = (type(error).__name__, error)
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.threads.append(thread)

    def join(self, timeout=30):
        for thread in self.threads:
            thread.join(timeout)
        assert not any(thread.is_alive() for thread in self.threads), "a store never came back"


def first_in_flight_then_waiting(broker, client, orders, names, unpause=True, **kwargs):
    """Send the first order while Redis is paused, then the others one by one, each once
    the one before waits for the call under way: a group in that order."""
    groups = broker._enqueues
    sent = groups.stores
    client.execute_command("CLIENT", "PAUSE", 20000, "WRITE")
    orders.send(names[0])
    wait_until(lambda: groups.stores == sent + 1, 10, "the first store to be sent")
    for n, name in enumerate(names[1:], 1):
        orders.send(name, **kwargs.get(name, {}))
        wait_until(lambda: len(groups._waiting) == n, 10, f"store {n} to wait")
    if unpause:
        client.execute_command("CLIENT", "UNPAUSE")


def test_stores_that_arrive_during_a_call_go_together_each_stored_once_in_order(app, broker, redis_client):
    orders, names = Orders(broker), [f"plato{n}" for n in range(8)]
    before = evalsha_calls(redis_client)
    first_in_flight_then_waiting(broker, redis_client, orders, names)
    orders.join()
    assert {name: outcome[0] for name, outcome in orders.outcomes.items()} == {name: "stored" for name in names}
    assert (broker._enqueues.calls, broker._enqueues.stores) == (2, 8)
    assert evalsha_calls(redis_client) - before == 2
    # Each job once, in the queue in the order the requests arrived, each with its status.
    queued = [dramatiq.Message.decode(redis_client.hget("dramatiq:comer.msgs", rid).encode()).args[0]
              for rid in redis_client.lrange("dramatiq:comer", 0, -1)]
    assert queued == names
    for name in names:
        assert app.get(f"/api/jobs/{orders.outcomes[name][1]}").json["state"] == "queued"


def test_each_store_in_a_group_gets_its_own_idempotent_answer(app, broker, redis_client):
    """The same Idempotency-Key twice in one call: the second is a replay of the first; with
    another fingerprint, a conflict. Stored once."""
    orders = Orders(broker)
    key = ("k1", "fingerprint-1", '{"job_id": "first"}', 60)
    first_in_flight_then_waiting(broker, redis_client, orders, ["lead", "a", "b", "c"], a={"idempotency": key},
                                 b={"idempotency": key}, c={"idempotency": ("k1", "fingerprint-2", "{}", 60)})
    orders.join()
    assert orders.outcomes["lead"][0] == orders.outcomes["a"][0] == "stored"
    assert orders.outcomes["b"][0] == Replay.__name__ and orders.outcomes["b"][1].answer == '{"job_id": "first"}'
    assert orders.outcomes["c"][0] == IdempotencyConflict.__name__
    assert broker._enqueues.calls == 2
    assert redis_client.llen("dramatiq:comer") == 2


def test_when_redis_goes_away_every_store_of_a_group_gets_its_error_and_none_hangs(redis_server, monkeypatch):
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    make_app(**{"enqueue.retry_seconds": "1"})
    broker = dramatiq.get_broker()
    orders, names = Orders(broker), [f"plato{n}" for n in range(5)]
    first_in_flight_then_waiting(broker, redis_server.client(), orders, names, unpause=False)
    redis_server.stop()  # the call under way fails; the group's call and every later try are refused
    orders.join()
    assert {name: orders.outcomes[name][0] for name in names} == {name: EnqueueUnavailable.__name__ for name in names}
    # The one in flight may have been stored; the ones that waited were refused outright.
    assert orders.outcomes[names[0]][1].maybe_stored
    assert not any(orders.outcomes[name][1].maybe_stored for name in names[1:])


@pytest.fixture
def replicated(tmp_path):
    master = RedisServer(tmp_path / "master", extra=("--repl-diskless-sync-delay", "0")).start()
    replica = RedisServer(tmp_path / "replica", extra=("--replicaof", "127.0.0.1", master.port))
    try:
        replica.start()
        wait_until(lambda: replica.client().info("replication").get("master_link_status") == "up", 30,
                   "the replica to be in sync")
        yield master
    finally:
        replica.stop()
        master.stop()


def test_with_replicas_a_group_waits_once_for_all_its_stores(replicated, monkeypatch):
    monkeypatch.setenv("FOODAPP_REDIS_URL", replicated.url)
    make_app(**{"enqueue.replicas": "1"})
    broker, client = dramatiq.get_broker(), replicated.client()
    orders, names = Orders(broker), [f"plato{n}" for n in range(4)]
    for script in (broker._enqueue, broker._enqueues.grouped):  # else each first call is tried twice
        client.script_load(script.script)
    waits = client.info("commandstats").get("cmdstat_wait", {}).get("calls", 0)
    first_in_flight_then_waiting(broker, client, orders, names)
    orders.join()
    assert all(outcome[0] == "stored" for outcome in orders.outcomes.values()), orders.outcomes
    assert broker._enqueues.calls == 2
    assert client.info("commandstats")["cmdstat_wait"]["calls"] - waits == 2
    assert client.llen("dramatiq:comer") == 4
