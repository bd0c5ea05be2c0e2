"""GET /metrics: Prometheus text, read from Redis, parsed with prometheus_client's own parser."""
import dramatiq
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import RedisServer, Web, http, wait_until


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
    # Not drained: the beber job waits 60 s. The comer jobs are done when the counters say so
    # and the dead one's message is in the dead letters (its status and counter are written
    # as it finishes; its message moves there with its acknowledgement, a moment later).
    done = wait_until(lambda: (found := samples(app)) and value(found, "foodapp_jobs_total", queue="comer",
                                                                  outcome="dead") == 1
                      and value(found, "foodapp_queue_dead_letters", queue="comer") == 1 and found,
                      20, "the comer jobs to be counted and the dead one's message in the dead letters")
    assert value(done, "foodapp_queue_depth", queue="comer") == 0
    assert value(done, "foodapp_jobs_total", queue="comer", outcome="done") == 3
    assert value(done, "foodapp_jobs_total", queue="comer", outcome="retried") == 1
    assert value(done, "foodapp_jobs_total", queue="comer", outcome="dead") == 1
    assert value(done, "foodapp_queue_dead_letters", queue="comer") == 1
    assert value(done, "foodapp_job_duration_seconds_count", queue="comer") == 5
    assert value(done, "foodapp_job_duration_seconds_bucket", queue="comer", le="+Inf") == 5
    assert value(done, "foodapp_redis_master") == 1
    assert value(done, "foodapp_workers") == 1
    assert value(done, "foodapp_jobs_in_flight", queue="comer") == 0


def families(text):
    return {family.name: family for family in text_string_to_metric_families(text)}


# The series that are this web process's own; every other foodapp_ series is read from Redis.
PER_PROCESS = {"foodapp_enqueue_seconds"}


def test_every_help_text_says_what_is_counted_and_whose_it_is(app):
    found = {name: family for name, family in families(app.get("/metrics").text).items() if name.startswith("foodapp_")}
    assert set(found) >= {"foodapp_queue_depth", "foodapp_queue_delayed", "foodapp_queue_dead_letters",
                          "foodapp_jobs_in_flight", "foodapp_jobs", "foodapp_job_duration_seconds",
                          "foodapp_enqueue_seconds", "foodapp_redis_master", "foodapp_redis_replicas_online",
                          "foodapp_redis_failovers", "foodapp_workers"}
    for name, family in found.items():
        words = family.documentation.split()
        assert len(words) >= 10, f"{name}: the help text {family.documentation!r} does not say what is counted"
        scope = "This web process only." if name.startswith(tuple(PER_PROCESS)) else "Cluster-wide."
        assert family.documentation.endswith(scope), f"{name}: the help text must end with {scope!r}"
        # A state is the value of a series, never a label of it: labels only say where or how much.
        for sample in family.samples:
            assert set(sample.labels) <= {"queue", "outcome", "le"}, (name, sample.labels)


def test_the_master_is_a_value_1_and_a_replica_0(app, redis_server, tmp_path, monkeypatch):
    assert samples(app)[("foodapp_redis_master", ())] == 1
    replica = RedisServer(tmp_path, extra=["--replicaof", "127.0.0.1", str(redis_server.port)])
    try:
        replica.start()
        wait_until(lambda: replica.client().info("replication").get("master_link_status") == "up", 20,
                   "the replica to sync")
        monkeypatch.setenv("FOODAPP_REDIS_URL", replica.url)
        from tests.conftest import make_app
        assert samples(make_app())[("foodapp_redis_master", ())] == 0
    finally:
        replica.stop()


def test_the_masters_cpu_is_counted_as_redis_itself_counts_it(app, redis_client):
    """foodapp_redis_cpu_seconds: the master's main thread's CPU, which every order and job
    spends on one core; it only grows, and it grows with the work done."""
    first = samples(app)[("foodapp_redis_cpu_seconds_total", ())]
    cpu = redis_client.info("cpu")
    assert 0 < first <= float(cpu["used_cpu_user_main_thread"]) + float(cpu["used_cpu_sys_main_thread"])
    for n in range(200):
        app.get(f"/comer/pan{n}", status=202)
    wait_until(lambda: samples(app)[("foodapp_redis_cpu_seconds_total", ())] > first, 10,
               "the master's CPU seconds to grow with 200 orders")


def test_cluster_wide_series_are_the_same_from_every_web_process(tmp_path, redis_server):
    """What docs/production.md says: scrape one web process for the cluster-wide series."""
    webs = [Web(tmp_path, redis_server.url, name=f"web{i}") for i in range(2)]
    try:
        for web in webs:
            web.start()
        assert http("GET", f"{webs[0].url}/comer/pan")[0] == 202

        def scrape(web):
            status, _, text = http("GET", f"{web.url}/metrics")
            assert status == 200, text
            return {(s.name, tuple(sorted(s.labels.items()))): s.value
                    for family in text_string_to_metric_families(text) for s in family.samples
                    if s.name.startswith("foodapp_")}
        first, second = scrape(webs[0]), scrape(webs[1])
        # Redis's used memory is cluster-wide too, but moves between two scrapes (each scrape's
        # own connection and replies use some), and so does the head job's wait (it grows with
        # time): the same series from both, not the same value.
        moving = ("foodapp_redis_memory_used_bytes", "foodapp_queue_latency_seconds", "foodapp_redis_cpu_seconds_total")
        assert all(key in second for key in first if key[0] in moving)
        cluster = {key for key in first if not key[0].startswith(tuple(PER_PROCESS)) and key[0] not in moving}
        assert cluster and {key: first[key] for key in cluster} == {key: second[key] for key in cluster}
        assert first[("foodapp_queue_depth", (("queue", "comer"),))] == 1
        # The enqueue latency is each process's own: one order through the first, none through the second.
        assert first[("foodapp_enqueue_seconds_count", ())] == 1
        assert second[("foodapp_enqueue_seconds_count", ())] == 0
    finally:
        for web in webs:
            web.stop()
