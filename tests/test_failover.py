"""Failover under load: kill -9 the Redis master while orders pour in; no 202'd job is lost."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.hosts import set_ini
from tests.sentinel import ReplicatedRedis
from tests.servers import TESTING_INI, RedisServer, Web, Worker, http, wait_until

pytestmark = pytest.mark.drill

ORDERS = 2000
KILL_AFTER = 600


@pytest.fixture
def replicated(tmp_path):
    redis_ = ReplicatedRedis(tmp_path).start()
    yield redis_
    redis_.stop()


def production_like_ini(tmp_path):
    ini = tmp_path / "failover.ini"
    ini.write_text(set_ini(
        TESTING_INI.read_text(),
        **{"enqueue.replicas": "1", "enqueue.retry_seconds": "6", "enqueue.replica_timeout_ms": "500",
           "kitchen.preparation_seconds": "0"},
    ))
    return ini


def test_killing_the_master_under_load_loses_no_accepted_job(tmp_path, replicated):
    ini = production_like_ini(tmp_path)
    env = {"FOODAPP_REDIS_SENTINELS": replicated.sentinel_setting}
    web = Web(tmp_path, "redis://unused:1/0", ini=ini, env=env).start()
    workers = [Worker(tmp_path, "redis://unused:1/0", ini=ini, env=env, threads=2, name=f"worker{i}").start()
               for i in range(2)]
    ready = http("GET", f"{web.url}/readyz")[2]
    assert ready["ready"] and ready["redis"]["master"].endswith(f":{replicated.master.port}"), ready

    results = {}
    killed = threading.Event()
    killed_at = []
    lock = threading.Lock()
    done_count = [0]

    def send(i):
        started = time.monotonic()
        try:
            status, _, body = http("GET", f"{web.url}/comer/plato{i}", timeout=30)
        except OSError as error:
            status, body = None, str(error)
        finished = time.monotonic()
        with lock:
            results[i] = (status, body, started, finished)
            done_count[0] += 1
            if done_count[0] == KILL_AFTER and not killed.is_set():
                replicated.master.kill()
                killed_at.append(time.monotonic())
                killed.set()

    deadline = time.monotonic() + 300
    with ThreadPoolExecutor(max_workers=8) as pool:
        for i in range(ORDERS):
            assert time.monotonic() < deadline, "the load did not finish in time"
            pool.submit(send, i)
    assert killed.is_set()

    statuses = [status for status, *_ in results.values()]
    accepted = {body["job_id"] for status, body, *_ in results.values() if status == 202}
    unavailable = [r for r in results.values() if r[0] == 503]
    assert set(statuses) <= {202, 503}, {s for s in statuses if s not in (202, 503)}
    for status, body, *_ in unavailable:
        assert body["error"] == "redis_unavailable"
    first_after_kill = min((finished for status, _, _, finished in results.values()
                            if status == 202 and finished > killed_at[0]), default=None)
    assert first_after_kill is not None, "no enqueue was accepted after the failover"

    new_master = wait_until(lambda: replicated.master_port() not in (None, replicated.master.port)
                            and replicated.master_port(), 30, "a new master")
    assert new_master == replicated.replica.port
    client = replicated.master_client()
    ready = wait_until(lambda: (r := http("GET", f"{web.url}/readyz")[2]).get("redis", {}).get("last_failover") and r,
                       30, "/readyz to report the failover")
    assert ready["redis"]["master"] == f"127.0.0.1:{new_master}"
    assert ready["redis"]["last_failover"]["master"] == f"127.0.0.1:{new_master}"
    assert ready["redis"]["last_failover"]["previous"] == f"127.0.0.1:{replicated.master.port}"

    def all_recorded():
        return accepted <= set(client.hkeys("foodapp:ledger"))
    wait_until(all_recorded, 180, "every accepted job to be in the ledger", interval=0.5)
    lost = accepted - set(client.hkeys("foodapp:ledger"))
    print(f"\nfailover under load: {len(results)} orders, {len(accepted)} accepted (202), "
          f"{len(unavailable)} answered 503, lost: {len(lost)}; "
          f"kill -9 -> first accepted enqueue: {first_after_kill - killed_at[0]:.2f} s "
          f"(down-after-milliseconds {replicated.down_after_ms})")
    assert not lost
    assert client.hlen("foodapp:ledger") == len(set(client.hkeys("foodapp:ledger")))
    # The workers followed the new master without a restart.
    assert all(worker.alive() for worker in workers)

    # The old master comes back, and the Sentinels make it a replica of the new one.
    old = RedisServer(tmp_path, port=replicated.master.port).start()
    try:
        wait_until(lambda: old.client().info("replication").get("role") == "slave", 60,
                   "the old master to come back as a replica")
        wait_until(lambda: old.client().info("replication").get("master_port") == new_master, 30,
                   "the old master to follow the new one")
    finally:
        old.stop()
        for worker in workers:
            worker.stop()
        web.stop()


def test_readyz_shows_the_topology_it_sees(tmp_path, replicated):
    ini = production_like_ini(tmp_path)
    web = Web(tmp_path, "redis://unused:1/0", ini=ini,
              env={"FOODAPP_REDIS_SENTINELS": replicated.sentinel_setting}).start()
    try:
        status, _, body = http("GET", f"{web.url}/readyz")
        assert status == 200 and body["ready"], body
        seen = body["redis"]
        assert seen["master"] == f"127.0.0.1:{replicated.master.port}" and seen["role"] == "master"
        assert [r["address"] for r in seen["replicas"]] == [f"127.0.0.1:{replicated.replica.port}"]
        assert seen["replicas"][0]["state"] == "online" and "lag_seconds" in seen["replicas"][0]
        assert len(seen["sentinels"]) == 3 and all(s["reachable"] for s in seen["sentinels"])
        assert {s["master"] for s in seen["sentinels"]} == {seen["master"]}
        code, _, order = http("GET", f"{web.url}/comer/platano")
        assert code == 202
        # The replica has it: the 202 came after its acknowledgement.
        job = replicated.replica.client().hget("dramatiq:comer.msgs", next(iter(
            replicated.replica.client().hkeys("dramatiq:comer.msgs"))))
        assert order["job_id"].encode() in job
    finally:
        web.stop()


def test_no_202_for_a_job_no_replica_acknowledged(tmp_path, replicated, monkeypatch):
    import signal

    from tests.conftest import make_app

    monkeypatch.setenv("FOODAPP_REDIS_URL", replicated.master.url)
    app = make_app(**{"enqueue.replicas": "1", "enqueue.retry_seconds": "0.5", "enqueue.replica_timeout_ms": "200"})
    app.get("/comer/pan", status=202)

    replicated.replica.proc.send_signal(signal.SIGSTOP)  # the replica stops answering
    try:
        refused = app.get("/comer/queso", status=503)
        assert "0 of 1 replica(s) acknowledged" in refused.json["message"]
        assert refused.headers["Retry-After"]
    finally:
        replicated.replica.proc.send_signal(signal.SIGCONT)
    app.get("/comer/vino", status=202)
