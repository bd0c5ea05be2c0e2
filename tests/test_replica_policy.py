"""How many replicas a write waits for, as real Sentinels see the topology (foodapp/replicas.py).

With its replica gone, a master that a majority of the Sentinels agrees on takes writes
alone; a master that a majority already judges down (a partition cut it off, the far side
is about to promote its replica) must not: whatever it takes alone is thrown away when it
rejoins. Found by the 30-minute soak, which lost accepted jobs in partitions.
"""
import pytest

from foodapp.broker import make_client
from foodapp.replicas import ReplicaPolicy
from foodapp.settings import Settings
from tests.sentinel import MASTER_NAME, running
from tests.servers import wait_until

pytestmark = pytest.mark.drill


@pytest.fixture
def topology(tmp_path):
    with running(tmp_path, down_after_ms=1000, failover_timeout_ms=3000) as redis_:
        yield redis_


def policy_for(topology):
    settings = Settings(redis_sentinels=tuple(("127.0.0.1", s.port) for s in topology.sentinels),
                        redis_master_name=MASTER_NAME, redis_socket_timeout=2, enqueue_replicas=1)
    return ReplicaPolicy(settings, make_client(settings))


def sees_master_down(sentinel):
    return sentinel.client().sentinel_master(MASTER_NAME)["is_sdown"]


def test_a_master_a_majority_of_sentinels_sees_down_never_takes_writes_alone(topology):
    # Two Sentinels notice a silent master within 1 s; the third would take two minutes.
    # With a quorum of 3 no failover starts, so the Sentinels keep naming the master while
    # two of them judge it down: the moment before a promotion, held still.
    first, second, slow = topology.sentinels
    slow.client().sentinel_set(MASTER_NAME, "down-after-milliseconds", 120000)
    for sentinel in topology.sentinels:
        sentinel.client().sentinel_set(MASTER_NAME, "quorum", 3)
    policy = policy_for(topology)
    assert policy.check() == 1

    # Its replica dies: every Sentinel agrees on the master, so it takes writes alone.
    topology.replica.stop()
    wait_until(lambda: policy.check() == 0, 20, "the Sentinels to see the replica gone")

    # The master falls silent: two Sentinels of three judge it down.
    topology.master.client().execute_command("CLIENT", "PAUSE", 15000, "ALL")
    wait_until(lambda: sees_master_down(first) and sees_master_down(second), 20,
               "two Sentinels to judge the master down")
    assert not sees_master_down(slow)
    assert policy.check() == 1, "a master most Sentinels see down must not take writes without its replica"


def test_a_reading_a_hung_master_holds_does_not_hold_the_orders_asking_after_it(topology):
    """The policy reads what replicas the master has online (INFO) in its own thread; on a
    master whose host is gone silently that reading waits out the socket timeout. An order
    that asks the policy again meanwhile (its retry after a failover) must not wait for that
    reading: in the hosts drill, orders in flight when host A died got their 202 2.3 s after
    B's promotion instead of 0.5 s, each held behind a reading of A begun just before it."""
    import signal
    import threading

    settings = Settings(redis_sentinels=tuple(("127.0.0.1", s.port) for s in topology.sentinels),
                        redis_master_name=MASTER_NAME, redis_socket_timeout=5, enqueue_replicas=1)
    policy = ReplicaPolicy(settings, make_client(settings))
    policy.refresh(fresh=0)
    topology.master.proc.send_signal(signal.SIGSTOP)
    try:
        reading = threading.Thread(target=policy.refresh, kwargs={"fresh": 0}, daemon=True)
        reading.start()
        wait_until(lambda: policy._reading.locked(), 10, "the reading of the frozen master to begin", interval=0.01)
        policy.refresh(fresh=0)  # an order's retry: it asks the Sentinels, and does not wait
        assert reading.is_alive(), "the order's refresh waited for the reading of the hung master"
    finally:
        topology.master.proc.send_signal(signal.SIGCONT)
    reading.join(10)
