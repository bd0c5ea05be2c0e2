"""The soak, short: `make soak` (bench/soak.py) for about 35 s of mixed load with random
worker kill -9s. Exactly one ledger entry per accepted order and none other; no job stuck;
no job started more than once per crash its status counts, plus once.
RSS growth and timings are printed (`-s`), never asserted.
"""
import pytest

from bench.soak import Config, soak, summary

pytestmark = pytest.mark.drill


@pytest.mark.timeout(900)
def test_a_short_soak_with_worker_kills_loses_and_doubles_nothing(tmp_path):
    result = soak(Config(seconds=35, workers=3, drain_timeout=240), tmp_path)
    print(summary(result))

    assert result.kills, "the soak killed no worker (no worker process found to kill)"
    assert result.accepted.jobs and result.accepted.requests["menu"] and result.accepted.requests["report"]
    # The ledger keeps one entry however often a job ran: the runs are counted on their own.
    assert result.figures["reruns_without_crash"] == 0, result.figures["reruns_without_crash_sample"]
    assert not result.failures, f"logs in {tmp_path}:\n" + "\n".join(result.failures)
