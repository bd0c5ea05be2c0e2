"""The soak, short: `make soak` (bench/soak.py) for about 60 s of mixed load against the
production Redis topology (master, replica, three Sentinels; in network namespaces where
the machine allows), with random worker kill -9s and at least one master kill -9 and one
partition of the master's host (partition only with namespaces: else the summary says it
was skipped, and the rest runs).

Asserted: 0 lost (exactly one ledger entry per accepted order and none other), no job
stuck, every re-run of a job in flight at a fault, at most once per crash where only
workers died. RSS growth and timings are printed (`-s`), never asserted.
"""
import pytest

from bench.soak import Config, soak, summary

pytestmark = pytest.mark.drill


@pytest.mark.timeout(900)
def test_a_short_soak_with_every_fault_loses_and_doubles_nothing(tmp_path):
    config = Config(seconds=60, workers=3, drain_timeout=240, redis_fault_every=(3.0, 6.0), each_fault=True)
    result = soak(config, tmp_path)
    print(summary(result))
    for kind, why in result.skipped.items():
        print(f"{kind} faults skipped: {why}")

    assert result.accepted.jobs and result.accepted.requests["menu"] and result.accepted.requests["report"]
    assert result.kills, "the soak killed no worker (no worker process found to kill)"
    assert result.faults.of("master"), "the soak killed no master"
    if "partition" in result.kinds:
        assert result.faults.of("partition"), "the soak partitioned no host"
    else:
        assert "partition" in result.skipped
    # The ledger keeps one entry however often a job ran: the runs are counted on their own.
    assert not result.figures["unexplained"], result.figures["unexplained"]
    assert not result.figures["beyond_crashes"], result.figures["beyond_crashes"]
    assert result.figures["lost"] == 0
    assert not result.failures, f"logs in {tmp_path}:\n" + "\n".join(result.failures)
