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
