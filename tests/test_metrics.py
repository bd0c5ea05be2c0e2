"""GET /metrics: Prometheus text, read from Redis, parsed with prometheus_client's own parser."""
import dramatiq
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import wait_until



def samples(app):
    response = app.get("/metrics", status=200)
    assert response.content_type == "text/plain"
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found, name, **labels):
    return found[(name, tuple(sorted(labels.items())))]


def test_metrics_count_every_process_work_from_redis(app, broker, worker):
    empty = samples(app)
    assert value(empty, "foodapp_queue_depth", queue="comer") == 0

    worker.pause()
    for item in ("pan", "queso", "vino"):
        app.get(f"/comer/{item}", status=202)
    app.get("/beber/agua?delay=60", status=202)
    queued = samples(app)
    assert value(queued, "foodapp_queue_depth", queue="comer") == 3
    assert value(queued, "foodapp_queue_delayed", queue="beber") == 1
    # This process's own histogram: earlier tests in the same process counted theirs too.
    assert value(queued, "foodapp_enqueue_seconds_count") - value(empty, "foodapp_enqueue_seconds_count") == 4

    def broken(item):
        raise ValueError(item)
    dramatiq.Actor(broken, broker=broker, actor_name="broken", queue_name="comer", priority=0,
                   options={"max_retries": 1, "min_backoff": 10, "max_backoff": 10}).send("piedra")
    worker.resume()
    # Not drained: the beber job waits 60 s. The comer jobs are done when the counters say so.
    done = wait_until(lambda: (found := samples(app)) and value(found, "foodapp_jobs_total", queue="comer",
                                                                  outcome="dead") == 1 and found,
                      20, "the comer jobs to be counted")
    assert value(done, "foodapp_queue_depth", queue="comer") == 0
    assert value(done, "foodapp_jobs_total", queue="comer", outcome="done") == 3
    assert value(done, "foodapp_jobs_total", queue="comer", outcome="retried") == 1
    assert value(done, "foodapp_jobs_total", queue="comer", outcome="dead") == 1
    assert value(done, "foodapp_queue_dead_letters", queue="comer") == 1
    assert value(done, "foodapp_job_duration_seconds_count", queue="comer") == 5
    assert value(done, "foodapp_job_duration_seconds_bucket", queue="comer", le="+Inf") == 5
    assert value(done, "foodapp_redis_master", role="master") == 1
    assert value(done, "foodapp_workers") == 1
    assert value(done, "foodapp_jobs_in_flight", queue="comer") == 0
