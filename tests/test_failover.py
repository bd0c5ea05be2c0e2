"""Failover under load: kill -9 the Redis master while orders pour in; no 202'd job is lost."""
import contextlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import runs
from tests.hosts import set_ini
from tests.sentinel import MASTER_NAME, running
from tests.servers import TESTING_INI, RedisServer, Web, Worker, http, wait_until

pytestmark = pytest.mark.drill

ORDERS = 2000
KILL_AFTER = 600


@pytest.fixture
def replicated(tmp_path):
    with running(tmp_path) as redis_:
        yield redis_


@pytest.fixture
def slow_failover(tmp_path):
    """Sentinel's down-after at 9 s: the master is missed for 9 s before the failover starts."""
    with running(tmp_path, down_after_ms=9000, failover_timeout_ms=20000) as redis_:
        yield redis_


def production_like_ini(tmp_path, **settings):
    ini = tmp_path / "failover.ini"
    ini.write_text(set_ini(
        TESTING_INI.read_text(),
        **{"enqueue.replicas": "1", "enqueue.retry_seconds": "6", "enqueue.replica_timeout_ms": "500",
           "kitchen.preparation_seconds": "0", **settings},
    ))
    return ini


@contextlib.contextmanager
def without_replica_or_majority(replicated):
    """Within it, the master has no replica online (killed) and only one Sentinel of three
    answers (two are stopped): no majority agrees it may take writes alone, so a write must
    still reach ``enqueue.replicas`` replica(s), and cannot. The Sentinels answer again on
    leaving; they then see the replica gone, and the master takes writes alone."""
    import signal

    cut_off = replicated.sentinels[1:]
    for sentinel in cut_off:
        sentinel.proc.send_signal(signal.SIGSTOP)
    try:
        replicated.replica.kill()
        master = replicated.master.client(decode_responses=True)
        wait_until(lambda: master.info("replication")["connected_slaves"] == 0, 10,
                   "the master to see its replica gone")
        yield
    finally:
        for sentinel in cut_off:
            sentinel.proc.send_signal(signal.SIGCONT)


def master_kill_drill(tmp_path, replicated, *, orders, kill_after, settings, workers=2, threads=2):
    """Orders pour in through one web process; after ``kill_after`` answers the master gets
    kill -9. Returns what the drill saw, once every accepted job is in the ledger."""
    ini = production_like_ini(tmp_path, **settings)
    env = {"FOODAPP_REDIS_SENTINELS": replicated.sentinel_setting}
    processes = []
    results = {}
    killed = threading.Event()
    killed_at = []  # (time.monotonic(), time.time()) of the kill
    lock = threading.Lock()
    try:
        web = Web(tmp_path, "redis://unused:1/0", ini=ini, env=env)
        processes.append(web)
        web.start()
        for i in range(workers):
            worker = Worker(tmp_path, "redis://unused:1/0", ini=ini, env=env, threads=threads, name=f"worker{i}")
            processes.append(worker)
            worker.start()
        ready = http("GET", f"{web.url}/readyz")[2]
        assert ready["ready"] and ready["redis"]["master"].endswith(f":{replicated.master.port}"), ready
        # Every worker process is up (its heartbeat is in), so jobs are running at the kill.
        wait_until(lambda: replicated.master.client().zcard("dramatiq:__heartbeats__") >= workers, 60,
                   "the workers' heartbeats")

        def send(i):
            started = time.monotonic()
            try:
                status, _, body = http("GET", f"{web.url}/comer/plato{i}", timeout=60)
            except OSError as error:
                status, body = None, str(error)
            finished = time.monotonic()
            with lock:
                results[i] = (status, body, started, finished)
                if len(results) == kill_after and not killed.is_set():
                    replicated.master.kill()
                    killed_at.append((time.monotonic(), time.time()))
                    killed.set()

        deadline = time.monotonic() + 300
        with ThreadPoolExecutor(max_workers=8) as pool:
            for i in range(orders):
                assert time.monotonic() < deadline, "the load did not finish in time"
                pool.submit(send, i)
        assert killed.is_set()

        new_master = wait_until(lambda: replicated.master_port() not in (None, replicated.master.port)
                                and replicated.master_port(), 60, "a new master")
        assert new_master == replicated.replica.port
        client = replicated.master_client()
        accepted = {body["job_id"] for status, body, *_ in results.values() if status == 202}
        # Until every accepted job is in the ledger, or nothing is left that could run:
        # then a missing one is lost, and the check says so without waiting any longer.
        wait_until(lambda: accepted <= set(client.hkeys("foodapp:ledger")) or not holding(client), 180,
                   "every accepted job to be in the ledger", interval=0.5)
        states = {}

        def all_done():
            with client.pipeline(transaction=False) as pipe:
                for job_id in accepted:
                    pipe.hget(f"foodapp:job:{job_id}", "state")
                states.update(zip(accepted, pipe.execute()))
            return all(state == "done" for state in states.values())
        try:
            wait_until(all_done, 60, "every accepted job's status to say done", interval=0.5)
        except AssertionError:
            pass  # asserted below, with the states
        # The workers followed the new master without a restart.
        assert all(worker.alive() for worker in processes[1:])
        return Drill(web, results, killed_at[0], new_master, client, accepted, states,
                     runs.read_runs(client, accepted), processes)
    except BaseException:
        stop_together(processes)
        raise


def stop_together(processes):
    """Each process's own graceful stop (a Dramatiq worker's takes ~3 s), all at once."""
    with ThreadPoolExecutor(max_workers=len(processes) or 1) as pool:
        for stopped in [pool.submit(process.stop) for process in processes]:
            stopped.result()


def holding(client):
    """Whether Redis still holds a job to run: queued, delayed, or in a worker's hands."""
    for queue in ("comer", "beber", "batch"):
        if client.llen(f"dramatiq:{queue}") or client.llen(f"dramatiq:{queue}.DQ"):
            return True
    return any(client.scard(key) for key in client.scan_iter("dramatiq:__acks__.*", count=1000))


class Drill:
    """What a master-kill drill saw; ``stop()`` ends its processes."""

    def __init__(self, web, results, killed_at, new_master, client, accepted, states, runs, processes):
        self.web, self.results, self.new_master, self.client = web, results, new_master, client
        self.killed_monotonic, self.killed_wall = killed_at
        self.accepted, self.states, self.runs, self.processes = accepted, states, runs, processes

    def stop(self):
        stop_together(self.processes)

    def check(self, down_after_ms):
        """Nothing lost, nothing stuck, nothing run twice but what was in flight at the kill."""
        results = self.results
        statuses = [status for status, *_ in results.values()]
        unavailable = [r for r in results.values() if r[0] == 503]
        assert set(statuses) <= {202, 503}, {s for s in statuses if s not in (202, 503)}
        for status, body, *_ in unavailable:
            assert body["error"] in ("redis_unavailable", "outcome_unknown"), body
            if body["error"] == "outcome_unknown":
                assert body["job_id"] and body["status_url"], body
        sent_after_kill = [r for r in results.values() if r[2] > self.killed_monotonic]
        assert sent_after_kill, "no order was sent after the kill"
        first_after_kill = min((finished for status, _, started, finished in results.values()
                                if status == 202 and started > self.killed_monotonic), default=None)
        assert first_after_kill is not None, "no order sent after the kill was accepted"

        ledger = set(self.client.hkeys("foodapp:ledger"))
        lost = self.accepted - ledger
        never_accepted = ledger - self.accepted
        not_done = {job_id: state for job_id, state in self.states.items() if state != "done"}
        # A job may run again only if it was in flight at the kill, and once (tests/runs.py).
        unexplained = runs.unexplained(self.runs, [self.killed_wall])
        retried = sum(sum(run.retries[1:]) for run in self.runs.values())
        print(f"\nmaster kill -9 under load (down-after {down_after_ms} ms): {len(results)} orders, "
              f"{len(self.accepted)} accepted (202), {len(unavailable)} answered 503, lost: {len(lost)}, "
              f"not done: {len(not_done)}, {runs.report(self.runs)} (retries after an error: {retried}; "
              f"all in flight at the kill: {not unexplained}); kill -9 -> first accepted enqueue: "
              f"{first_after_kill - self.killed_monotonic:.2f} s")
        assert not lost, sorted(lost)[:10]
        # Orders that got a 503 may still have been stored (the outcome was unknown); none other.
        unknown = {body.get("job_id") for status, body, *_ in unavailable if isinstance(body, dict)}
        assert never_accepted <= unknown, sorted(never_accepted - unknown)[:10]
        assert not not_done, dict(list(not_done.items())[:10])
        assert all(len(self.runs[job_id]) for job_id in self.accepted), "a done job has no started event"
        assert not unexplained, runs.describe(unexplained)


def test_killing_the_master_under_load_loses_no_accepted_job(tmp_path, replicated):
    drill = master_kill_drill(tmp_path, replicated, orders=ORDERS, kill_after=KILL_AFTER, settings={})
    try:
        drill.check(replicated.down_after_ms)
        ready = wait_until(lambda: (r := http("GET", f"{drill.web.url}/readyz")[2]).get("redis", {}).get("last_failover")
                           and r, 30, "/readyz to report the failover")
        assert ready["redis"]["master"] == f"127.0.0.1:{drill.new_master}"
        assert ready["redis"]["last_failover"]["master"] == f"127.0.0.1:{drill.new_master}"
        assert ready["redis"]["last_failover"]["previous"] == f"127.0.0.1:{replicated.master.port}"

        # The old master comes back, and the Sentinels make it a replica of the new one.
        old = RedisServer(tmp_path, port=replicated.master.port)
        try:
            old.start()
            wait_until(lambda: old.client().info("replication").get("role") == "slave", 60,
                       "the old master to come back as a replica")
            wait_until(lambda: old.client().info("replication").get("master_port") == drill.new_master, 30,
                       "the old master to follow the new one")
        finally:
            old.stop()
    finally:
        drill.stop()


def test_a_slow_failover_loses_no_running_job_and_leaves_none_running(tmp_path, slow_failover):
    """Jobs running at the kill fail on their own Redis writes and must be retried; their
    worker holds each one (and its ack-set entry) until the new master takes the retry,
    however long the failover lasts, instead of giving up and acknowledging it."""
    # Four threads a worker process, as supervisor/production.conf runs them: eight jobs in
    # hand at the kill, and the 1200 orders (0.05 s each) drained twice as fast as with two.
    drill = master_kill_drill(
        tmp_path, slow_failover, orders=1200, kill_after=300,
        settings={"kitchen.preparation_seconds": "0.05"}, threads=4,
    )
    try:
        drill.check(slow_failover.down_after_ms)
        # No worker died: none may look dead for having been unable to beat while the
        # Sentinels failed over (longer than the heartbeat timeout here). The sweeps' clock
        # sees the gap and gives every worker a whole timeout on the new master.
        crashed = {job_id: run.crashes for job_id, run in drill.runs.items() if run.crashes}
        assert not crashed, f"live workers were swept as dead: crashes counted for {crashed}"
    finally:
        drill.stop()


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


def test_a_job_no_replica_acknowledged_gets_no_202_and_no_503_that_hides_it(tmp_path, replicated, monkeypatch):
    """The replica stops acknowledging: the master has the job, so the answer must not say
    "nothing was queued". It says the outcome is unknown and which job it is; with an
    Idempotency-Key, sending again never makes a second job."""
    import signal

    from tests.conftest import make_app

    monkeypatch.setenv("FOODAPP_REDIS_URL", replicated.master.url)
    app = make_app(**{"enqueue.replicas": "1", "enqueue.retry_seconds": "0.5", "enqueue.replica_timeout_ms": "200"})
    app.get("/comer/pan", status=202)
    master = replicated.master.client(decode_responses=True)

    replicated.replica.proc.send_signal(signal.SIGSTOP)  # the replica stops answering
    try:
        unknown = app.get("/comer/queso", status=503)
        assert unknown.json["error"] == "outcome_unknown", unknown.json
        assert "0 of 1 replica(s) acknowledged" in unknown.json["message"]
        assert "Nothing was queued" not in unknown.json["message"] and "Idempotency-Key" in unknown.json["message"]
        assert unknown.headers["Retry-After"]
        # It is the truth: the master holds that very job, queued.
        status = app.get(unknown.json["status_url"].replace("http://localhost", ""), status=200).json
        assert status["job_id"] == unknown.json["job_id"] and status["state"] == "queued" and status["args"] == ["queso"]

        keyed = app.get("/comer/tarta", headers={"Idempotency-Key": "tarta-1"}, status=503)
        assert keyed.json["error"] == "outcome_unknown" and "same Idempotency-Key" in keyed.json["message"]
        again = app.get("/comer/tarta", headers={"Idempotency-Key": "tarta-1"}, status=503)
        assert again.json["job_id"] == keyed.json["job_id"], "a second send named another job"
    finally:
        replicated.replica.proc.send_signal(signal.SIGCONT)

    replayed = app.get("/comer/tarta", headers={"Idempotency-Key": "tarta-1"}, status=202)
    assert replayed.headers["Idempotent-Replayed"] == "true" and replayed.json["job_id"] == keyed.json["job_id"]
    app.get("/comer/vino", status=202)
    queued = [json.loads(master.hget("dramatiq:comer.msgs", rid))["args"][0] for rid in master.lrange("dramatiq:comer", 0, -1)]
    assert queued == ["pan", "queso", "tarta", "vino"]


def test_an_order_no_replica_could_acknowledge_is_refused_without_being_stored(tmp_path, replicated, monkeypatch):
    """The master has no replica online and the write must wait for one (a majority of the
    Sentinels cannot be heard, so no fewer is safe): the write is not made, since its WAIT
    could only time out, leaving a job stored that the answer must call unknown. The answer
    says nothing was queued, and that is true; once the Sentinels are heard again (and see
    the replica gone), the master takes orders alone.

    Found in the bench's master kill: right after a failover, before most Sentinels named
    the new master, each order stored itself on it and waited the whole replica timeout
    (1 s) for a replica it did not have, then tried again: the first 202 came 1.2 s after
    the failover instead of at once."""
    from tests.conftest import make_app

    monkeypatch.setenv("FOODAPP_REDIS_SENTINELS", replicated.sentinel_setting)
    app = make_app(**{"enqueue.replicas": "1", "enqueue.retry_seconds": "1", "enqueue.replica_timeout_ms": "300"})
    app.get("/comer/pan", status=202)
    master = replicated.master.client(decode_responses=True)

    with without_replica_or_majority(replicated):
        # The first order may find the app's last reading of the master from before the kill
        # (it reads every half second), store itself and wait in vain: its outcome is unknown.
        app.get("/comer/queso", status=503)
        refused = app.get("/comer/tarta", status=503).json
        assert refused["error"] == "redis_unavailable", refused
        assert "0 replica(s) online" in refused["message"], refused
        # It is the truth: the master holds no trace of that order.
        queued = [json.loads(master.hget("dramatiq:comer.msgs", rid))["args"] for rid in master.lrange("dramatiq:comer", 0, -1)]
        assert queued[0] == ["pan"] and ["tarta"] not in queued, queued
        stored = [master.hget(key, "args") for key in master.scan_iter("foodapp:job:*") if not key.endswith(":events")]
        assert '["tarta"]' not in stored and '["pan"]' in stored, stored

    def accepted():
        return app.get("/comer/vino", expect_errors=True).status_int == 202
    wait_until(accepted, 30, "the master to take orders alone once the Sentinels see the replica gone")


def test_an_operators_change_no_replica_could_confirm_is_refused_unsent(tmp_path, replicated, monkeypatch):
    """The same moment for an operator: the console's cancel (one job and in bulk) and the
    dashboard's Delete. Before, the console wrote the change on the master, waited out the
    replica timeout and answered 200 "0 of 1 replica(s) confirmed it": a change a failover
    could throw away. Now nothing is written, the answer is a 503 that says why, and the
    same request works once the master may take writes alone."""
    import re

    from tests.conftest import make_app

    monkeypatch.setenv("FOODAPP_REDIS_SENTINELS", replicated.sentinel_setting)
    app = make_app(**{"enqueue.replicas": "1", "enqueue.retry_seconds": "1", "enqueue.replica_timeout_ms": "300"})
    job_id = app.get("/comer/pan", status=202).json["job_id"]
    master = replicated.master.client(decode_responses=True)
    [rid] = master.lrange("dramatiq:comer", 0, -1)
    csrf = re.search(r'data-csrf-token="([^"]+)"', app.get("/ops/jobs").text).group(1)
    dashboard_csrf = re.search(r'name="__dd_csrf" value="(\w+)"', app.get("/jobs/queues/comer").text).group(1)

    def cancel(status):
        return app.post_json(f"/ops/api/jobs/{job_id}/cancel", {}, headers={"X-CSRF-Token": csrf}, status=status).json

    with without_replica_or_majority(replicated):
        # An order first: its retry reads the master again, so what follows sees 0 online
        # (the app's last reading may be from before the kill).
        app.get("/comer/queso", status=503)
        refused = cancel(503)
        assert refused["error"] == "redis_unavailable" and "0 replica(s) online" in refused["message"], refused
        bulk = app.post_json("/ops/api/jobs/bulk", {"action": "cancel", "ids": [job_id]},
                             headers={"X-CSRF-Token": csrf}, status=503).json
        assert "0 replica(s) online" in bulk["message"], bulk
        deleted = app.post("/jobs/delete-message", {"__dd_csrf": dashboard_csrf, "queue": "comer", "id": rid},
                           status=503).text
        assert "cannot take the delete" in deleted and "0 replica(s) online" in deleted, deleted
        # The truth: nothing was changed on the master.
        assert master.hget(f"foodapp:job:{job_id}", "state") == "queued"
        assert master.lrange("dramatiq:comer", 0, -1)[0] == rid and master.hexists("dramatiq:comer.msgs", rid)

    wait_until(lambda: app.post_json(f"/ops/api/jobs/{job_id}/cancel", {}, headers={"X-CSRF-Token": csrf},
                                     expect_errors=True).status_int == 200, 30,
               "the cancel to be taken once the Sentinels see the replica gone")
    assert master.hget(f"foodapp:job:{job_id}", "state") == "cancelled"


def test_a_worker_fetches_nothing_it_could_not_have_confirmed(tmp_path, replicated, monkeypatch):
    """The same moment on a worker's side: its fetch must be confirmed by a replica (the
    jobs it takes are otherwise still queued on the other side of a partition), and the
    master has none online. Before, it took the jobs into its ack set, waited out the replica
    timeout, did not run them, and left them there until its orphan check gave them back,
    again and again; now it fetches nothing, says why, and runs them once a write may go
    without a replica (the Sentinels heard again, and seeing the replica gone)."""
    from tests.conftest import make_app

    env = {"FOODAPP_REDIS_SENTINELS": replicated.sentinel_setting}
    worker = Worker(tmp_path, "redis://unused:1/0", ini=production_like_ini(tmp_path), env=env, threads=2)
    master = replicated.master.client(decode_responses=True)
    try:
        worker.start()
        wait_until(lambda: master.zcard("dramatiq:__heartbeats__") == 1, 60, "the worker's heartbeat")
        with without_replica_or_majority(replicated):
            # Orders stored without a replica's acknowledgement, straight on the master.
            monkeypatch.setenv("FOODAPP_REDIS_URL", replicated.master.url)
            app = make_app(**{"enqueue.replicas": "0"})
            job_ids = [app.get(f"/comer/plato{i}", status=202).json["job_id"] for i in range(5)]
            wait_until(lambda: "not fetching jobs of comer: the master has 0 replica(s) online" in worker.output(),
                       20, "the worker to say it fetches nothing", interval=0.2)
            assert master.llen("dramatiq:comer") == 5
            assert not [key for key in master.scan_iter("dramatiq:__acks__.*") if master.scard(key)]
            assert {master.hget(f"foodapp:job:{job_id}", "state") for job_id in job_ids} == {"queued"}
        wait_until(lambda: {master.hget(f"foodapp:job:{job_id}", "state") for job_id in job_ids} == {"done"}, 60,
                   "the jobs to run once the Sentinels see the replica gone", interval=0.2)
        assert [len(run) for run in runs.read_runs(master, job_ids).values()] == [1] * 5  # each ran once
    finally:
        worker.stop()


def test_orders_go_to_a_promoted_master_without_waiting_for_the_dead_one_it_replaced(tmp_path, slow_failover,
                                                                                      monkeypatch):
    """A host dies with the master on it (frozen here: SIGSTOP, so connections to it hang as
    to a host gone, instead of being refused). Once the Sentinels promote the replica, they
    list the old master as the new master's replica, up, until down-after passes once more
    (9 s here; 5 s in production). It is not connected to the new master, and can only come
    back by resyncing, which the master lists first: no write can wait for it.

    Found in the hosts drill run with production's down-after (5 s): each order in flight
    was refused (the new master has 0 replicas online and the write "must reach 1") until
    the Sentinels judged the old master down again, 10-11 s after the host died, past
    enqueue.retry_seconds (8 s): the proxy's clients got 504 outcome_unknown. Now the order
    is taken as soon as the Sentinels agree on the new master, while they still list the
    old one as up."""
    import signal

    from tests.conftest import make_app

    monkeypatch.setenv("FOODAPP_REDIS_SENTINELS", slow_failover.sentinel_setting)
    app = make_app(**{"enqueue.replicas": "1", "enqueue.retry_seconds": "40", "redis.socket_timeout": "0.5",
                      "enqueue.replica_timeout_ms": "300"})
    app.get("/comer/pan", status=202)
    old = slow_failover.master
    old.proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: slow_failover.master_port() == slow_failover.replica.port, 60,
                   "the Sentinels to promote the replica", interval=0.2)
        held = app.get("/comer/queso", status=202).json
        # A web process started since learns which master was replaced from what the first
        # one wrote down (foodapp:failovers).
        started_since = make_app(**{"enqueue.replicas": "1", "enqueue.retry_seconds": "40",
                                    "enqueue.replica_timeout_ms": "300"})
        also = started_since.get("/comer/vino", status=202).json
        client = slow_failover.master_client()
        assert {client.hget(f"foodapp:job:{job['job_id']}", "state") for job in (held, also)} == {"queued"}
        # ... while the Sentinels still list the old master as an up replica of the new one.
        for sentinel in slow_failover.sentinels:
            [listed] = [replica for replica in sentinel.client().sentinel_slaves(MASTER_NAME)
                        if int(replica["port"]) == old.port]
            assert not (listed["is_sdown"] or listed["is_odown"]), listed
        assert client.info("replication")["connected_slaves"] == 0
    finally:
        old.proc.send_signal(signal.SIGCONT)


def test_readyz_does_not_wait_out_the_socket_timeout_on_a_master_that_hangs(tmp_path, slow_failover, monkeypatch):
    """A host gone silently (frozen master here) makes every command to it wait for
    ``redis.socket_timeout``; /readyz must still answer within the front proxy's health
    check (deploy/haproxy: timeout check 3 s), or the proxy takes the process out of
    service while it could hold orders through the failover.

    Found in the hosts drill with production's timings (socket timeout 2 s): B's /readyz
    took 4.5 s while A's master hung (the command and its connection each waited it out),
    HAProxy marked B down (Layer7 timeout), and with A dead too it answered every order
    503 no_backend until B came back. /readyz now gives the master a bounded time and,
    past it, asks the Sentinels, as for a master that refuses connections."""
    import signal

    from tests.conftest import make_app

    monkeypatch.setenv("FOODAPP_REDIS_SENTINELS", slow_failover.sentinel_setting)
    app = make_app(**{"enqueue.replicas": "1", "redis.socket_timeout": "5"})
    assert app.get("/readyz", status=200).json["ready"]
    slow_failover.master.proc.send_signal(signal.SIGSTOP)
    try:
        answer = app.get("/readyz", status=200).json
    finally:
        slow_failover.master.proc.send_signal(signal.SIGCONT)
    assert answer["redis"]["failing_over"], answer
    assert "no answer within 1.5 s" in answer["reason"] and "3 of 3 Sentinels answer" in answer["reason"], answer


def test_a_web_process_stays_ready_while_the_sentinels_judge_a_dead_replica(tmp_path, slow_failover, monkeypatch):
    """The replica's host dies silently (its Redis frozen here: SIGSTOP). The master drops
    it after repl-timeout (5 s here; 10 s in production); the Sentinels judge it down only
    after down-after (9 s here; 5 s in production, so a process that exits, closing its
    connection, makes this window as long). Meanwhile an order must reach a replica that
    is not there, so it is held, and once the Sentinels judge it down, taken without one:
    /readyz says ready, as through a failover.

    Found in the hosts drill with production's timings: when host B died, A's /readyz said
    "enqueues wait for 1 replica(s) and 0 are online" until the Sentinels judged B's replica
    down; A being the only host left, the proxy answered hundreds of orders 503 no_backend
    that A would have taken."""
    import signal

    from tests.conftest import make_app

    monkeypatch.setenv("FOODAPP_REDIS_SENTINELS", slow_failover.sentinel_setting)
    app = make_app(**{"enqueue.replicas": "1", "enqueue.retry_seconds": "30", "enqueue.replica_timeout_ms": "300"})
    app.get("/comer/pan", status=202)
    master = slow_failover.master.client(decode_responses=True)
    slow_failover.replica.proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: master.info("replication")["connected_slaves"] == 0, 30,
                   "the master to drop its frozen replica (repl-timeout)")
        riding = app.get("/readyz", status=200).json
        assert riding["ready"] and riding["redis"]["waiting_for_replica"], riding
        assert "3 of 3 Sentinels answer" in riding["reason"] and "judge it down" in riding["reason"], riding
        # The console's overview says the same (foodapp/readiness.py serves both).
        overview = app.get("/ops/api/overview", status=200).json
        assert overview["ready"] and overview["topology"]["waiting_for_replica"], overview["reason"]
        # And it is true: an order sent now is held, then taken once they judge the replica down.
        held = app.get("/comer/queso", status=202).json
        assert master.hget(f"foodapp:job:{held['job_id']}", "state") == "queued"
        replicas = [replica for sentinel in slow_failover.sentinels
                    for replica in sentinel.client().sentinel_slaves(MASTER_NAME)]
        assert any(replica["is_sdown"] for replica in replicas), replicas
        assert app.get("/readyz", status=200).json["ready"]
    finally:
        slow_failover.replica.proc.send_signal(signal.SIGCONT)


def test_a_web_process_stays_ready_through_a_failover_it_can_ride_out(tmp_path, slow_failover, monkeypatch):
    """The master is gone and the Sentinels have not promoted the replica yet (down-after 9 s):
    an order would be held until they do, so /readyz says ready, and the front proxy keeps
    sending orders instead of answering them with errors. Unless this process cannot reach a
    majority of the Sentinels: then nobody it can hear from will promote anything."""
    import signal

    from tests.conftest import make_app

    monkeypatch.setenv("FOODAPP_REDIS_SENTINELS", slow_failover.sentinel_setting)
    app = make_app(**{"enqueue.replicas": "1", "enqueue.retry_seconds": "30", "redis.socket_timeout": "0.5",
                      "enqueue.replica_timeout_ms": "300"})
    app.get("/comer/pan", status=202)
    assert app.get("/readyz", status=200).json["ready"]

    cut_off = slow_failover.sentinels[1:]
    for sentinel in cut_off:
        sentinel.proc.send_signal(signal.SIGSTOP)
    try:
        slow_failover.master.kill()
        alone = app.get("/readyz", status=503).json
        assert not alone["ready"] and "did not answer" in alone["reason"], alone
    finally:
        for sentinel in cut_off:
            sentinel.proc.send_signal(signal.SIGCONT)

    riding = app.get("/readyz", status=200).json
    assert riding["ready"] and riding["redis"]["failing_over"], riding
    assert "3 of 3 Sentinels answer" in riding["reason"], riding
    # And it is true: an order sent now is held until the replica is promoted, then accepted.
    held = app.get("/comer/queso", status=202).json
    assert slow_failover.master_port() == slow_failover.replica.port
    assert slow_failover.master_client().hexists("foodapp:job:" + held["job_id"], "state")
    ready = app.get("/readyz", status=200).json
    assert ready["redis"]["master"] == f"127.0.0.1:{slow_failover.replica.port}" and "failing_over" not in ready["redis"]
