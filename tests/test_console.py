"""The console's overview JSON and chart series (foodapp/series.py), the enqueue 503 count,
and `foodapp stats --watch`, against real private redis-servers."""
import signal
import subprocess
import time

import pytest
import redis

from foodapp import series
from tests.conftest import drain, make_app
from tests.servers import BIN, TESTING_INI, RedisServer, wait_until


@pytest.fixture(autouse=True)
def no_pending_503s():
    """503s another test left in this process (they are kept until a write) do not count here."""
    with series._pending_lock:
        series._pending.clear()
    yield
    with series._pending_lock:
        series._pending.clear()


def test_the_overview_json_says_what_the_page_shows(app, broker, worker, redis_client):
    app.get("/comer/pan", status=202)
    drain(broker, worker)
    redis_client.zadd("dramatiq:__heartbeats__", {"ghost": int((time.time() - 60) * 1000)})
    data = app.get("/ops/api/overview", status=200).json
    assert data["ready"] is True and data["topology"]["role"] == "master"
    assert {"used", "max", "headroom"} <= set(data["memory"])
    assert [queue["name"] for queue in data["queues"]] == ["batch", "beber", "comer"]
    for queue in data["queues"]:
        assert {"queued", "delayed", "dead", "paused", "latency_seconds"} <= set(queue)
    assert data["workers"] == {"alive": 1, "late": 0, "dead": 1, "stopped": 0, "total": 2}
    assert data["failovers"] == [] and isinstance(data["audit"], list)


def test_the_series_json_is_bounded_and_says_why_not(app):
    default = app.get("/ops/api/series", status=200).json
    assert default["minutes"] == 60 and len(default["rates"]["times"]) == 60
    assert len(default["rates"]["processed"]) == len(default["enqueue_503"]["counts"]) == 60
    assert len(default["samples"]["times"]) == len(default["samples"]["workers"]) <= 360
    assert len(app.get("/ops/api/series", params={"minutes": "1"}).json["rates"]["times"]) == 1
    assert len(app.get("/ops/api/series", params={"minutes": "120"}).json["rates"]["times"]) == 120
    for bad in ("0", "121", "-5", "abc", "1.5"):
        refused = app.get("/ops/api/series", params={"minutes": bad}, status=400).json
        assert refused["error"] == "bad_minutes" and "1 to 120" in refused["message"], refused


def test_the_series_show_the_share_of_one_core_the_master_used(app, broker, redis_server):
    """From two samples in a row, the master's CPU seconds between them ÷ the time between
    them; read at times long past, so that no live sampler takes those slots."""
    first = (time.time() // 60 - 30) * 60
    assert series.sample(broker, now=first)
    for n in range(300):
        app.get(f"/comer/pan{n}", status=202)
    second = first + series.SLOT_SECONDS
    assert series.sample(broker, now=second)
    samples = series.read(redis.Redis.from_url(redis_server.url), minutes=2, now=second)["samples"]  # bytes, as the app's
    assert len(samples["redis_cpu_percent"]) == len(samples["times"])
    slot = samples["times"].index(second)
    assert samples["redis_cpu_percent"][slot - 1] is None  # no sample before the first
    # 300 orders' Redis work, over the 10 s the two readings say lay between them.
    assert 0 < samples["redis_cpu_percent"][slot] <= 100, samples["redis_cpu_percent"]


def test_a_missed_slot_leaves_one_gap_in_the_cpu_chart(app, broker, redis_server):
    first = (time.time() // 60 - 40) * 60
    assert series.sample(broker, now=first)
    assert series.sample(broker, now=first + 2 * series.SLOT_SECONDS)  # the slot between: nobody sampled it
    samples = series.read(redis.Redis.from_url(redis_server.url), minutes=2, now=first + 2 * series.SLOT_SECONDS)
    cpu = samples["samples"]["redis_cpu_percent"]
    slot = samples["samples"]["times"].index(first)
    assert cpu[slot + 1] is None and cpu[slot + 2] is not None, cpu[slot:slot + 3]


def test_no_cpu_share_across_a_gap_or_another_server():
    assert series._cpu_percent({"c": 1.0, "t": 100.0}, {"c": 1.5, "t": 110.0}) == 5.0
    assert series._cpu_percent({"c": 1.0, "t": 100.0}, {"c": 1.5, "t": 100.0 + 4 * series.SLOT_SECONDS}) is None
    assert series._cpu_percent({"c": 9.0, "t": 100.0}, {"c": 0.5, "t": 110.0}) is None  # a new master's count
    assert series._cpu_percent(None, {"c": 1.0, "t": 110.0}) is None
    assert series._cpu_percent({"w": 1, "q": {}}, {"c": 1.0, "t": 110.0}) is None  # a sample from before the reading


def test_the_series_show_the_jobs_run_the_queues_and_the_workers(app, broker, worker):
    worker.pause()
    for item in ("pan", "queso", "vino"):
        app.get(f"/comer/{item}", status=202)

    def sampled():
        # Whoever takes the next 10-second slot's sample (the overview's call, or the worker's
        # heartbeat thread) sees the three orders waiting.
        app.get("/ops/api/overview", status=200)
        samples = app.get("/ops/api/series", params={"minutes": "5"}).json["samples"]
        taken = [i for i, workers in enumerate(samples["workers"]) if workers is not None]
        return taken and samples["depth"]["comer"][taken[-1]] == 3 and (samples, taken)

    samples, taken = wait_until(sampled, 30, "a sample with the three orders waiting", interval=0.5)
    assert samples["workers"][taken[-1]] == 1
    assert samples["depth"]["beber"][taken[-1]] == 0
    assert samples["latency"]["comer"][taken[-1]] is not None
    worker.resume()
    drain(broker, worker)
    rates = app.get("/ops/api/series", params={"minutes": "5"}).json["rates"]
    # Three jobs done this minute (or, past a minute boundary, in the one before).
    assert rates["processed"][-1] > 0 or rates["processed"][-2] > 0
    assert rates["failed"][-2:] == [0, 0]


def test_a_slot_is_sampled_once_whoever_asks(app, broker, redis_client):
    now = time.time()
    assert series.sample(broker, now=now) is True
    assert series.sample(broker, now=now) is False  # this process already tried the slot
    other = make_app()  # another process's client: Redis says the slot is taken
    import dramatiq

    assert series.sample(dramatiq.get_broker(), now=now) is False
    slot = int(now // 10)
    key = f"foodapp:series:{slot // 6}"
    assert redis_client.hexists(key, str(slot % 6))
    assert 0 < redis_client.ttl(key) <= series.RETENTION
    assert series.sample(dramatiq.get_broker(), now=now + 10) is True  # the next slot
    assert len([field for field in redis_client.hkeys(key) if ":" not in field]) >= 1
    del other


def test_503s_are_counted_in_redis_and_kept_while_redis_is_down(tmp_path, monkeypatch):
    first = RedisServer(tmp_path)
    again = RedisServer(tmp_path, port=first.port)
    try:
        first.start()
        monkeypatch.setenv("FOODAPP_REDIS_URL", first.url)
        app = make_app()
        app.get("/comer/pan", status=202)
        first.kill()
        for _ in range(2):
            assert app.get("/comer/pepino", status=503).json["error"] == "redis_unavailable"
        assert series.pending_refused() == 2  # Redis could not take the count: kept here
        again.start()
        app.get("/comer/tomate", status=202)  # the next write adds them
        assert series.pending_refused() == 0
        counts = app.get("/ops/api/series", params={"minutes": "2"}).json["enqueue_503"]["counts"]
        assert sum(counts) == 2
    finally:
        first.stop()
        again.stop()


def test_a_503_with_redis_answering_is_counted_at_once(tmp_path, redis_server, monkeypatch):
    """A replica stops acknowledging: the answer is 503 outcome_unknown, counted in Redis now."""
    replica = RedisServer(tmp_path, extra=("--replicaof", "127.0.0.1", str(redis_server.port)))
    replica.start()
    master = redis_server.client(decode_responses=True)
    try:
        wait_until(lambda: master.info("replication").get("slave0", {}).get("state") == "online", 30,
                   "the replica to be online")
        monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
        app = make_app(**{"enqueue.replicas": "1", "enqueue.retry_seconds": "0.5",
                          "enqueue.replica_timeout_ms": "200"})
        app.get("/comer/pan", status=202)
        replica.proc.send_signal(signal.SIGSTOP)
        try:
            assert app.get("/comer/queso", status=503).json["error"] == "outcome_unknown"
        finally:
            replica.proc.send_signal(signal.SIGCONT)
        assert series.pending_refused() == 0
        minute = int(time.time() // 60)
        stored = sum(int(master.hget(f"foodapp:series:{m}", "503") or 0) for m in (minute - 1, minute))
        assert stored == 1
    finally:
        replica.stop()


def test_stats_watch_prints_again_with_rates(tmp_path, redis_server, app, broker, worker):
    app.get("/comer/pan", status=202)
    drain(broker, worker)
    watch = subprocess.run(
        [BIN / "foodapp", "-c", TESTING_INI, "stats", "--watch", "--interval", "0.5", "--count", "2"],
        env={"FOODAPP_REDIS_URL": redis_server.url, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60)
    assert watch.returncode == 0, watch.stderr
    prints = [block for block in watch.stdout.split("\n\n") if block.strip()]
    assert len(prints) == 2, watch.stdout
    for block in prints:
        lines = block.splitlines()
        assert "workers 1" in lines[0]
        assert lines[1].split() == ["queue", "queued", "delayed", "dead", "done/s", "failed/s", "dead/s", "retried/s"]
        assert [line.split()[0] for line in lines[2:]] == ["batch", "beber", "comer"]
    assert prints[0].splitlines()[-1].split()[4:] == ["-", "-", "-", "-"]  # no rate before a second print
    assert prints[0].splitlines()[0].endswith("redis master cpu -")
    busy = prints[1].splitlines()[0].rpartition("redis master cpu ")[2]
    assert busy.endswith(" %") and 0 <= float(busy[:-2]) <= 100, busy
    assert [float(rate) for rate in prints[1].splitlines()[-1].split()[4:]] == [0.0, 0.0, 0.0, 0.0]


def test_stats_watch_into_a_reader_that_stops_ends_quietly(redis_server):
    """`foodapp stats --watch | head -1`: the reader goes away; the watch ends, no traceback."""
    watch = subprocess.Popen([BIN / "foodapp", "-c", TESTING_INI, "stats", "--watch", "--interval", "0.5", "--count", "20"],
                             env={"FOODAPP_REDIS_URL": redis_server.url, "PATH": "/usr/bin:/bin"},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "workers" in watch.stdout.readline()
        watch.stdout.close()  # as head does after its line
        assert watch.wait(timeout=30) == 0
        assert watch.stderr.read() == ""
    finally:
        if watch.poll() is None:
            watch.kill()
        watch.stderr.close()


def test_stats_watch_refuses_a_too_short_interval(redis_server):
    short = subprocess.run([BIN / "foodapp", "-c", TESTING_INI, "stats", "--watch", "--interval", "0.1"],
                           env={"FOODAPP_REDIS_URL": redis_server.url, "PATH": "/usr/bin:/bin"},
                           capture_output=True, text=True, timeout=60)
    assert short.returncode == 2 and "0.5 seconds or more" in short.stderr


def redis_commands(client):
    """Commands Redis has run so far (INFO commandstats), the INFO asking included."""
    return sum(stat["calls"] for stat in client.info("commandstats").values())


def commands_for(client, call, tries=3):
    """The fewest commands one ``call`` cost over a few tries: the first call in a 10-second
    slot also takes the chart sample (series.sample), the others do not."""
    costs = []
    for _ in range(tries):
        before = redis_commands(client)
        call()
        costs.append(redis_commands(client) - before - 1)
    return min(costs)


def test_the_overview_and_series_cost_the_same_commands_at_100_and_100000_jobs(app, broker, redis_server):
    from tests.test_scale import SEED

    client = redis_server.client()
    now = time.time()
    minute = int(now // 60)
    # Counters for the last two hours, as busy workers leave them; and samples.
    with client.pipeline(transaction=False) as pipe:
        for m in range(minute - 120, minute + 1):
            pipe.hset(f"foodapp:minute:{m}", mapping={f"{q}:{o}": 1000 for q in ("comer", "beber", "batch")
                                                      for o in ("done", "failed", "dead", "retried", "crashed")})
        pipe.hset("foodapp:stats", mapping={"comer:done": 100_000, "comer:failed": 10})
        pipe.execute()
    for slot in range(int(now // 10) - 360, int(now // 10)):
        series.sample(broker, now=slot * 10)

    def costs(label, slot_time):
        pages = {path: commands_for(client, lambda: app.get(path, status=200))
                 for path in ("/ops", "/ops/api/overview", "/ops/api/series?minutes=60", "/ops/api/series?minutes=120")}
        before = redis_commands(client)
        assert series.sample(broker, now=slot_time) is True  # a slot nobody took: the full cost
        pages["sample"] = redis_commands(client) - before - 1
        return pages

    def seed(chunk, count):
        # In chunks of 10,000 (each a short script), with time to spare on a busy machine.
        script = SEED.replace('"seed-" .. i', f'"c{chunk}-" .. i').replace("%08x-0000", f"%08x-{chunk:04x}")
        redis.Redis(host="127.0.0.1", port=redis_server.port, socket_timeout=120).eval(script, 0, count, int(now * 1000))

    seed(0, 100)
    small = costs("100 jobs", now + 3600)
    for chunk in range(1, 11):
        seed(chunk, 10_000 if chunk < 10 else 9_900)
    assert client.llen("dramatiq:comer") == 100_000
    large = costs("100,000 jobs", now + 7200)
    print(f"\nRedis commands per request at 100 and at 100,000 jobs: {small}")
    assert large == small, (small, large)
    assert client.info("commandstats").get("cmdstat_keys") is None and client.info("commandstats").get("cmdstat_scan") is None
