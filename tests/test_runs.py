"""tests/runs.py, the re-run bound every drill asserts, on timelines written straight into Redis."""
import json

import pytest

from tests import runs


def timeline(client, job_id, *events, crashes=None):
    for event, at in events:
        client.rpush(f"foodapp:job:{job_id}:events", json.dumps({"event": event, "at": f"{at:.3f}"}))
    client.hset(f"foodapp:job:{job_id}", mapping={"state": "done", **({"crashes": crashes} if crashes else {})})


@pytest.mark.parametrize("decode", [True, False])
def test_runs_are_counted_from_the_started_events(redis_server, decode):
    client = redis_server.client(decode_responses=decode)
    timeline(client, "once", ("queued", 1), ("started", 2), ("done", 3))
    timeline(client, "twice", ("queued", 1), ("started", 2), ("requeued", 9), ("started", 10), ("done", 11), crashes=1)

    found = runs.read_runs(client, ["once", "twice", "unknown"])
    assert runs.counts(found) == {"once": 1, "twice": 2, "unknown": 0}
    assert found["twice"].starts == [2.0, 10.0] and found["twice"].done == [11.0] and found["twice"].crashes == 1
    assert runs.report(found) == "runs: 3, re-run: 1 jobs ['twice']"
    runs.assert_reruns_only_after_crashes(found)
    runs.assert_reruns_only_at_kills(found, [5.0])


def test_a_rerun_no_kill_explains_fails(redis_client):
    timeline(redis_client, "done-before", ("started", 2), ("done", 3), ("started", 10), ("done", 11))
    timeline(redis_client, "started-after", ("started", 6), ("started", 10), ("done", 11))
    timeline(redis_client, "three-times", ("started", 2), ("started", 6), ("started", 10), ("done", 11))
    found = runs.read_runs(redis_client, ["done-before", "started-after", "three-times"])

    assert set(runs.unexplained(found, [5.0])) == {"done-before", "started-after", "three-times"}
    assert set(runs.unexplained(found, [(5.0, 6.5)])) == {"done-before", "three-times"}
    assert set(runs.unexplained(found, [4.0, 8.0])) == {"done-before"}
    with pytest.raises(AssertionError, match="done-before: starts"):
        runs.assert_reruns_only_at_kills(found, [4.0, 8.0])
    with pytest.raises(AssertionError, match="3 job"):
        runs.assert_reruns_only_after_crashes(found)


def test_runs_only_an_old_master_kept_still_count(redis_server, tmp_path):
    from tests.servers import RedisServer

    old = RedisServer(tmp_path)
    try:
        old.start()
        new_client, old_client = redis_server.client(), old.client()
        # Replicated before the split: both have the first start. Then each ran it once more.
        timeline(old_client, "split", ("started", 2), ("started", 6), ("done", 7))
        timeline(new_client, "split", ("started", 2), ("started", 8), ("done", 9))
        merged = runs.merge(runs.read_runs(new_client, ["split"]), runs.read_runs(old_client, ["split"]))
    finally:
        old.stop()
    assert merged["split"].starts == [2.0, 6.0, 8.0] and merged["split"].done == [7.0, 9.0]
    assert set(runs.unexplained(merged, [4.0])) == {"split"}
    assert len(merged["split"].timeline) == 5 and len(merged["split"].retries) == 3


def test_a_merge_keeps_the_retry_before_a_start(redis_server, tmp_path):
    """A retried run that only the old master kept stays a retry, not a re-run, once merged."""
    from tests.servers import RedisServer

    old = RedisServer(tmp_path)
    try:
        old.start()
        new_client, old_client = redis_server.client(), old.client()
        timeline(new_client, "retried", ("started", 2))
        timeline(old_client, "retried", ("started", 2), ("retrying", 3), ("error", 3), ("started", 4), ("done", 5))
        merged = runs.merge(runs.read_runs(new_client, ["retried"]), runs.read_runs(old_client, ["retried"]))
    finally:
        old.stop()
    assert merged["retried"].starts == [2.0, 4.0] and merged["retried"].retries == [False, True]
    runs.assert_reruns_only_at_kills(merged, [])


def test_the_retry_of_a_run_that_raised_is_no_rerun_but_a_second_start_without_one_is(redis_client):
    timeline(redis_client, "retried", ("started", 2), ("retrying", 3), ("error", 3), ("started", 4), ("done", 5))
    timeline(redis_client, "doubled", ("started", 2), ("retrying", 3), ("started", 4), ("started", 4.5), ("done", 5))
    found = runs.read_runs(redis_client, ["retried", "doubled"])

    assert set(runs.unexplained(found, [])) == {"doubled"}
    runs.assert_reruns_only_after_crashes({"retried": found["retried"]})
    with pytest.raises(AssertionError, match="doubled"):
        runs.assert_reruns_only_after_crashes(found)


def test_a_run_that_raised_at_a_kill_may_start_again_from_the_kill_and_from_its_retry(redis_client):
    """Seen in the slow-failover drill: a job raised at the master's kill (its retry stored),
    and the sweep also gave back its message; the given-back copy started first, the retry
    when due. One start explained by the kill, one by the retry; a fourth start by neither."""
    timeline(redis_client, "both", ("started", 2), ("retrying", 3), ("started", 10), ("done", 11),
             ("started", 20), ("done", 21))
    timeline(redis_client, "more", ("started", 2), ("retrying", 3), ("started", 10), ("done", 11),
             ("started", 20), ("done", 21), ("started", 30))
    found = runs.read_runs(redis_client, ["both", "more"])
    assert set(runs.unexplained(found, [2.5])) == {"more"}
