"""Secrets and Redis: the app runs as deploy/redis's ACL user, which can do nothing else,
and every operator action that writes to Redis (the dashboard's requeue and delete, the
console's job, bulk, queue and periodic actions) works as that user; production refuses
to start without the Redis and Sentinel passwords; workers start without the dashboard's
credentials.

Real redis-server (with the aclfile deploy/redis/render-acl.sh makes from
deploy/redis/users.acl.in), real waitress and a real `dramatiq foodapp.worker`."""
import json
import os
import re
import subprocess
from pathlib import Path

import plaster
import pytest
import redis

from foodapp.settings import SettingsError, check_startup, from_ini
from tests.hosts import Host
from tests.servers import BIN, ROOT, Process, RedisServer, Web, Worker, free_port, http, wait_until

PASSWORDS = {"FOODAPP_REDIS_PASSWORD": "app-secret", "REDIS_ADMIN_PASSWORD": "admin-secret",
             "REDIS_REPLICA_PASSWORD": "replica-secret", "REDIS_SENTINEL_PASSWORD": "sentinel-secret"}
#: How foodapp's processes log in to Redis in production (production.ini's redis.username).
APP_ENV = {"FOODAPP_REDIS_USERNAME": "foodapp", "FOODAPP_REDIS_PASSWORD": PASSWORDS["FOODAPP_REDIS_PASSWORD"]}


class AclRedis(RedisServer):
    def client(self, **options):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, username="admin",
                           password=PASSWORDS["REDIS_ADMIN_PASSWORD"], **options)

    def app_client(self):
        # As foodapp connects: its user name and password.
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, username="foodapp",
                           password=PASSWORDS["FOODAPP_REDIS_PASSWORD"])

    def answers(self):
        try:
            return self.client().ping()
        except redis.RedisError:
            return False


@pytest.fixture
def acl_redis(tmp_path):
    aclfile = tmp_path / "foodapp-users.acl"
    rendered = subprocess.run([ROOT / "deploy" / "redis" / "render-acl.sh", aclfile], capture_output=True, text=True,
                              env={"PATH": os.environ["PATH"], **PASSWORDS}, timeout=30)
    assert rendered.returncode == 0, rendered.stderr
    text = aclfile.read_text()
    assert not any(secret in text for secret in PASSWORDS.values()), "a password in clear in the aclfile"
    server = AclRedis(tmp_path, extra=("--aclfile", aclfile))
    try:
        yield server.start()
    finally:
        server.stop()


def test_the_app_and_a_worker_run_as_the_acl_user_and_nothing_is_refused(tmp_path, acl_redis):
    env = APP_ENV
    admin = acl_redis.client(decode_responses=True)
    web = Web(tmp_path, acl_redis.url, env=env).start()
    worker = Worker(tmp_path, acl_redis.url, env=env).start()
    try:
        urls = [http("GET", web.url + path)[2]["status_url"]
                for path in ("/comer/tomate", "/beber/agua", "/comer/pan?delay=1")]
        urls.append(http("GET", web.url + "/comer/uva", headers={"Idempotency-Key": "acl-1"})[2]["status_url"])
        assert http("GET", web.url + "/comer/uva", headers={"Idempotency-Key": "acl-1"})[2]["status_url"] == urls[-1]
        status, _, menu = http("POST", web.url + "/menu", headers={"Content-Type": "application/json"},
                               body=b'[{"comer": "queso"}, {"beber": "vino"}]')
        assert status == 202, menu
        urls += [job["status_url"] for job in menu["jobs"]]
        for url in urls:
            try:
                wait_until(lambda: http("GET", url)[2].get("state") == "done", 60, f"{url} to be done", interval=0.2)
            except AssertionError as error:
                raise AssertionError(f"{error}; refused: {admin.acl_log()}") from None
        status, _, report = http("POST", web.url + "/reports")
        assert status == 202, report
        result = wait_until(lambda: http("GET", report["status_url"])[2].get("result"), 60, "the report", interval=0.2)
        assert result["eaten"] == 4 and result["drunk"] == 2, result
        assert http("GET", menu["status_url"])[0] == 200
        for path in ("/ops", "/metrics", "/readyz", "/jobs/", "/jobs/queues/comer", "/healthz"):
            assert http("GET", web.url + path)[0] == 200, path
        # Everything foodapp, Dramatiq and the dashboard did was allowed.
        refused = admin.acl_log()
        assert not refused, f"commands refused to the app's user: {refused}"
    finally:
        worker.stop()
        web.stop()

    app = acl_redis.app_client()
    for command in (("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("CONFIG", "SET", "maxmemory", "0"),
                    ("KEYS", "*"), ("SAVE",), ("SHUTDOWN",), ("ACL", "LIST"), ("MONITOR",),
                    ("REPLICAOF", "NO", "ONE"), ("SCRIPT", "FLUSH"), ("SET", "somebody-elses-key", "1")):
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.execute_command(*command)
    assert admin.hlen("foodapp:ledger") == 6
    # An unauthenticated client gets nothing, nor one that names no user (the default user
    # is off), even with the app's password.
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=acl_redis.port, socket_timeout=5).ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=acl_redis.port, socket_timeout=5,
                    password=PASSWORDS["FOODAPP_REDIS_PASSWORD"]).ping()



def test_the_console_reads_and_acts_as_the_acl_user_and_nothing_is_refused(tmp_path, acl_redis, monkeypatch):
    """Every console page and JSON answer, and the job actions, as the app's ACL user, with a
    real worker beating (its heartbeat samples the charts' series) and logging per job."""
    from tests.conftest import make_app
    from tests.test_queue_control import csrf_token, post

    admin = acl_redis.client(decode_responses=True)
    monkeypatch.setenv("FOODAPP_REDIS_URL", acl_redis.url)
    for name, value in APP_ENV.items():
        monkeypatch.setenv(name, value)
    app = make_app()
    worker = Worker(tmp_path, acl_redis.url, env=APP_ENV).start()
    try:
        done = app.get("/comer/tomate", status=202).json
        later = [app.get(f"/comer/{item}?delay=300", status=202).json for item in ("pan", "uva", "higo")]
        wait_until(lambda: app.get(f"/api/jobs/{done['job_id']}").json["state"] == "done", 60, "the job to be done")
        wait_until(lambda: admin.keys("foodapp:series:*"), 30, "the worker's heartbeat to sample the series")
        for path in ("/ops", "/ops/api/overview", "/ops/api/series?minutes=5", "/ops/api/queues",
                     "/ops/jobs?item=tomate", "/ops/api/jobs?item=tomate", "/ops/api/jobs?state=scheduled",
                     f"/ops/api/jobs/{done['job_id']}", f"/ops/jobs/{done['job_id']}", "/ops/workers",
                     "/ops/periodic", "/ops/api/periodic"):
            app.get(path, status=200)
        token = csrf_token(app)
        assert post(app, f"/ops/api/jobs/{later[0]['job_id']}/cancel", token)["ok"]
        assert post(app, f"/ops/api/jobs/{later[1]['job_id']}/run-now", token)["ok"]
        post(app, "/ops/api/jobs/bulk", token, body={"action": "cancel", "ids": [later[2]["job_id"]]})
        wait_until(lambda: app.get(f"/api/jobs/{later[1]['job_id']}").json["state"] == "done", 60, "run now to run")
        refused = admin.acl_log()
        assert not refused, f"commands refused to the app's user: {refused}"
    finally:
        worker.stop()


def production_settings(**environ):
    return from_ini(plaster.get_settings(str(ROOT / "production.ini"), "app:main"), environ=environ)


SENTINELS = {"FOODAPP_REDIS_SENTINELS": "127.0.0.1:1 127.0.0.1:2"}


def test_production_settings_need_the_passwords_and_only_web_processes_the_dashboards():
    settings = production_settings(**SENTINELS)
    with pytest.raises(SettingsError, match="FOODAPP_REDIS_PASSWORD.*FOODAPP_SENTINEL_PASSWORD"):
        check_startup(settings, web=False)
    settings = production_settings(**SENTINELS, FOODAPP_REDIS_PASSWORD="x")
    with pytest.raises(SettingsError, match="FOODAPP_SENTINEL_PASSWORD") as missing:
        check_startup(settings, web=False)
    assert "FOODAPP_REDIS_PASSWORD" not in str(missing.value)
    # Both passwords: a worker starts without the dashboard's credentials; a web process not.
    settings = production_settings(**SENTINELS, FOODAPP_REDIS_PASSWORD="x", FOODAPP_SENTINEL_PASSWORD="y")
    check_startup(settings, web=False)
    with pytest.raises(SettingsError, match="FOODAPP_DASHBOARD_PASSWORD_HASH"):
        check_startup(settings, web=True)
    # Development and testing do not ask for them.
    for ini in ("development.ini", "testing.ini"):
        check_startup(from_ini(plaster.get_settings(str(ROOT / ini), "app:main"), environ={}), web=True)


def test_production_web_and_worker_processes_refuse_to_start_without_the_passwords(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **SENTINELS}
    web = Process([BIN / "pserve", ROOT / "production.ini", f"http_port={free_port()}"], tmp_path / "web.log", env=env)
    worker = Process([BIN / "dramatiq", "foodapp.worker", "--processes", "1", "--threads", "1", "--queues", "comer"],
                     tmp_path / "worker.log", env={**env, "FOODAPP_INI": str(ROOT / "production.ini")})
    for process in (web, worker):
        process.start()
        try:
            wait_until(lambda: not process.alive(), 60, f"{process.argv[:2]} to stop", interval=0.2)
        finally:
            process.stop()
        assert "security.require_passwords is on: set FOODAPP_REDIS_PASSWORD" in process.output(), process.output()
        assert "FOODAPP_SENTINEL_PASSWORD" in process.output()


def deploy_conf(name, folder, port, replace):
    """deploy/redis/<name> for this machine: port, directory and secrets files in ``folder``."""
    text = (ROOT / "deploy" / "redis" / name).read_text()
    for old, new in {"bind 0.0.0.0": "bind 127.0.0.1", **replace}.items():
        assert old in text, f"{old!r} not in deploy/redis/{name}"
        text = text.replace(old, new)
    text = re.sub(r"(?m)^port \d+$", f"port {port}", text)
    text = re.sub(r"(?m)^dir .*$", f"dir {folder}", text)
    conf = folder / name
    conf.write_text(text)
    return conf


def test_deploy_redis_configs_run_master_replica_and_sentinel_with_the_acl_users(tmp_path):
    """master.conf, replica.conf and sentinel.conf as shipped (only hosts, ports and paths
    changed): maxmemory with noeviction, the replica replicating as user replica, a Sentinel
    monitoring both as user sentinel, the app's user refused FLUSHALL."""
    aclfile = tmp_path / "foodapp-users.acl"
    subprocess.run([ROOT / "deploy" / "redis" / "render-acl.sh", aclfile], check=True, capture_output=True,
                   env={"PATH": os.environ["PATH"], **PASSWORDS}, timeout=30)
    secrets = tmp_path / "foodapp-secrets.conf"
    secrets.write_text(f"masterauth {PASSWORDS['REDIS_REPLICA_PASSWORD']}\n")
    sentinel_secrets = tmp_path / "foodapp-sentinel-secrets.conf"
    sentinel_secrets.write_text("requirepass sentinel-clients-secret\n")
    common = {"/etc/redis/foodapp-secrets.conf": str(secrets), "/etc/redis/foodapp-users.acl": str(aclfile)}
    ports = [free_port() for _ in range(3)]
    processes = []
    try:
        for name, port, replace in (("master.conf", ports[0], common),
                                    ("replica.conf", ports[1], {**common, "replicaof hostA 6379": f"replicaof 127.0.0.1 {ports[0]}"})):
            folder = tmp_path / name.split(".")[0]
            folder.mkdir()
            processes.append(Process(["redis-server", deploy_conf(name, folder, port, replace)], folder / "out.log").start())
        folder = tmp_path / "sentinel"
        folder.mkdir()
        conf = deploy_conf("sentinel.conf", folder, ports[2], {
            "/etc/redis/foodapp-sentinel-secrets.conf": str(sentinel_secrets),
            "sentinel monitor foodmaster hostA 6379 2": f"sentinel monitor foodmaster 127.0.0.1 {ports[0]} 1"})
        with open(conf, "a") as out:  # what the secrets file adds on a host: the Sentinel's password to the servers
            out.write(f"sentinel auth-pass foodmaster {PASSWORDS['REDIS_SENTINEL_PASSWORD']}\n")
        processes.append(Process(["redis-server", conf, "--sentinel"], folder / "out.log").start())

        def admin(port):
            return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, username="admin",
                               password=PASSWORDS["REDIS_ADMIN_PASSWORD"], decode_responses=True)

        def up(port):
            try:
                return admin(port).ping()
            except redis.RedisError:
                return False
        for port, process in zip(ports[:2], processes):
            wait_until(lambda: up(port) or (not process.alive() and pytest.fail(process.output())), 20, f"redis on {port}")
        master, replica = admin(ports[0]), admin(ports[1])
        assert master.config_get("maxmemory") == {"maxmemory": str(2 * 1024 ** 3)}
        assert master.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        wait_until(lambda: replica.info("replication").get("master_link_status") == "up", 30,
                   "the replica to replicate as user replica")
        master.set("foodapp:probe", "1")
        wait_until(lambda: replica.get("foodapp:probe") == "1", 10, "the write on the replica")

        sentinel = redis.Redis(host="127.0.0.1", port=ports[2], socket_timeout=5, password="sentinel-clients-secret",
                               decode_responses=True)

        def monitored():
            try:
                state = sentinel.sentinel_master("foodmaster")
            except redis.RedisError:
                return False
            return state["flags"] == "master" and state["num-slaves"] == 1 and state["last-ok-ping-reply"] < 5000
        wait_until(monitored, 30, "the Sentinel to monitor master and replica as user sentinel", interval=0.2)
        assert not master.acl_log(), master.acl_log()

        app = redis.Redis(host="127.0.0.1", port=ports[0], socket_timeout=5, username="foodapp",
                          password=PASSWORDS["FOODAPP_REDIS_PASSWORD"])
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.flushall()
        assert app.get("foodapp:probe") == b"1"
    finally:
        for process in reversed(processes):
            process.stop()


def environment_of(pid):
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None, None
    names = {entry.split(b"=", 1)[0].decode(errors="replace") for entry in raw.split(b"\0") if entry}
    return cmdline, names


def test_workers_under_supervisord_are_not_given_the_dashboards_credentials(tmp_path, redis_server):
    """supervisor/production.conf (shrunk to one worker of each kind): supervisord's
    environment has the dashboard's user and hash; web processes see them, workers not."""
    host = Host(tmp_path, "hostA", redis_server.url, workers=1, batch=1,
                env={"FOODAPP_DASHBOARD_USERNAME": "ops", "FOODAPP_DASHBOARD_PASSWORD_HASH": "scrypt$not-used"})
    try:
        host.start()
        seen = {"web": 0, "worker": 0}
        for pid in host.pids():
            cmdline, names = environment_of(pid)
            if cmdline is None:
                continue
            if "dramatiq" in cmdline:
                seen["worker"] += 1
                assert not {"FOODAPP_DASHBOARD_USERNAME", "FOODAPP_DASHBOARD_PASSWORD_HASH"} & names, cmdline
                assert "FOODAPP_INI" in names
            elif "pserve" in cmdline:
                seen["web"] += 1
                assert "FOODAPP_DASHBOARD_PASSWORD_HASH" in names
        # Each worker program: Dramatiq's main process and its worker process.
        assert seen["web"] >= 2 and seen["worker"] >= 4, seen
        assert http("GET", host.url + "/comer/tomate")[0] == 202
    finally:
        host.stop()


def test_crashed_workers_sweep_and_dead_letters_run_as_the_acl_user(tmp_path, acl_redis, monkeypatch):
    """A job that kills its worker, three times, as the ACL user: the sweep requeues it, then
    dead-letters it; the dashboard lists it; ACL LOG stays empty."""
    import dramatiq

    from tests.conftest import make_app

    env = APP_ENV
    host = Host(tmp_path, "a", acl_redis.url, workers=2, modules=["tests.poison_actors"], env=env)
    try:
        host.start()
        for name, value in {"FOODAPP_REDIS_URL": acl_redis.url, **env}.items():
            monkeypatch.setenv(name, value)
        make_app()
        message = dramatiq.get_broker().enqueue(dramatiq.Message(
            queue_name="comer", actor_name="poison", args=("seta venenosa",), kwargs={}, options={}))
        dead = wait_until(lambda: (job := http("GET", f"{host.url}/api/jobs/{message.message_id}")[2]).get("state") == "dead"
                          and job, 120, "the poison job to die", interval=0.5)
        assert dead["crashes"] == 3, dead
        assert "seta venenosa" in http("GET", f"{host.url}/jobs/queues/comer/failed")[2]
        assert http("GET", f"{host.url}/ops")[0] == 200
        status, _, accepted = http("GET", f"{host.url}/comer/pan")
        wait_until(lambda: http("GET", accepted["status_url"])[2].get("state") == "done", 60, "an order after the poison")
        refused = acl_redis.client().acl_log()
        assert not refused, f"commands refused to the app's user: {refused}"
    finally:
        host.stop()


# --- every operator action that writes to Redis, as the app's ACL user -------------------

def _as_the_acl_user(monkeypatch, acl_redis, **environ):
    """The web app built in this process (webtest) as production logs it in: user foodapp."""
    from tests.conftest import make_app

    for name, value in {"FOODAPP_REDIS_URL": acl_redis.url, **APP_ENV, **environ}.items():
        monkeypatch.setenv(name, value)
    return make_app()


def _state(admin, job_id):
    from foodapp.jobs import status_key

    return admin.hget(status_key(job_id), "state")


def _audited(admin):
    """The audit log's entries, oldest first."""
    from foodapp.security import AUDIT

    return [json.loads(entry) for entry in reversed(admin.lrange(AUDIT, 0, -1))]


def _console_post(app, path, body=None):
    """A console POST as its scripts send it: JSON, with the page's token in X-CSRF-Token.
    Any status: the caller's assertion shows the answer (a NOPERM comes back as a 503)."""
    token = re.search(r'data-csrf-token="([^"]+)"', app.get("/ops").text).group(1)
    return app.post_json(path, body if body is not None else {}, headers={"X-CSRF-Token": token}, status="*")


def _refused_nothing(admin, what):
    refused = admin.acl_log()
    assert not refused, f"commands refused to the app's user during {what}: {refused}"


def test_operators_dead_letter_actions_run_as_the_acl_user(tmp_path, acl_redis, monkeypatch):
    """The dashboard's requeue and delete, the console's retry (one job, and the jobs page's
    bulk form) and the overview's "requeue all dead letters", each on a dead letter made by
    a real worker, all as the app's ACL user: each takes effect in Redis, each requeued job
    runs once more (counted by its timeline and by the actor), the deleted one never again,
    each is audited, and ACL LOG stays empty."""
    import dramatiq
    from dramatiq import Message

    from tests import acl_actors
    from tests.runs import counts, read_runs

    admin = acl_redis.client(decode_responses=True)
    items = {"requeue": "pan duro", "delete": "leche agria", "retry": "arroz pasado", "bulk": "sopa fria",
             "all": "queso rancio"}
    admin.sadd(acl_actors.FAILING, *items.values())
    app = _as_the_acl_user(monkeypatch, acl_redis)
    worker = Worker(tmp_path, acl_redis.url, queues=("comer",), env=APP_ENV)
    worker.argv[2:2] = ["tests.acl_actors"]  # dramatiq foodapp.worker tests.acl_actors ...
    try:
        worker.start()
        broker = dramatiq.get_broker()
        job = {name: broker.enqueue(Message(queue_name="comer", actor_name="flaky", args=(item,), kwargs={},
                                            options={})).message_id for name, item in items.items()}
        wait_until(lambda: all(_state(admin, job_id) == "dead" for job_id in job.values()), 60,
                   f"the jobs to be dead letters\n{worker.output()[-3000:]}", interval=0.1)
        assert counts(read_runs(admin, job.values())) == {job_id: 1 for job_id in job.values()}
        # Each dead letter's redis message id (what the dashboard's forms name).
        letters = {json.loads(admin.hget("dramatiq:comer.XQ.msgs", r))["message_id"]: r
                   for r in admin.zrange("dramatiq:comer.XQ", 0, -1)}
        rid = {name: letters[job_id] for name, job_id in job.items()}
        admin.srem(acl_actors.FAILING, *(item for name, item in items.items() if name != "delete"))
        _refused_nothing(admin, "the dead-lettering")

        # The dashboard's own buttons: its CSRF token from the dead letter's page.
        page = app.get(f"/jobs/queues/comer/failed/{rid['requeue']}", status=200)
        token = re.search(r'name="__dd_csrf" value="(\w+)"', page.text).group(1)
        app.post("/jobs/requeue-message", {"__dd_csrf": token, "queue": "comer.XQ", "id": rid["requeue"]}, status=302)
        app.post("/jobs/delete-message", {"__dd_csrf": token, "queue": "comer.XQ", "id": rid["delete"]}, status=302)
        for name in ("requeue", "delete"):
            assert admin.zscore("dramatiq:comer.XQ", rid[name]) is None, name
            assert not admin.hexists("dramatiq:comer.XQ.msgs", rid[name]), name
        _refused_nothing(admin, "the dashboard's requeue and delete")

        # The console: retry one job (as its scripts do), then one from the jobs page's bulk form.
        answer = _console_post(app, f"/ops/api/jobs/{job['retry']}/retry")
        assert answer.status_int == 200 and answer.json["ok"] and answer.json["state"] == "queued", answer.text
        jobs_page = app.get("/ops/jobs", params={"item": items["bulk"]}, status=200)
        form = jobs_page.forms["bulk"]
        form.get("ids", index=0).value = job["bulk"]
        assert form.submit("action", value="retry").status_int == 303
        _refused_nothing(admin, "the console's retries")

        # The overview's "Requeue all dead letters" of comer: what is left, the job "all".
        assert admin.zrange("dramatiq:comer.XQ", 0, -1) == [rid["all"]]
        overview = app.get("/ops", status=200)
        form = next(f for f in overview.forms.values() if f.action.endswith("/comer/requeue-dead"))
        assert form.submit().status_int == 303

        requeued = [job[name] for name in ("requeue", "retry", "bulk", "all")]
        wait_until(lambda: all(_state(admin, job_id) == "done" for job_id in requeued), 60,
                   f"the requeued jobs to run\n{worker.output()[-3000:]}", interval=0.1)
        wait_until(lambda: admin.llen("dramatiq:comer") == 0 and admin.hlen("dramatiq:comer.msgs") == 0, 30,
                   "the requeued jobs' messages to be acknowledged")
    finally:
        worker.stop()
    # Each requeued job ran once more, the deleted one never again: by its timeline and by
    # the actor's own count.
    assert counts(read_runs(admin, job.values())) == {**{job_id: 2 for job_id in requeued}, job["delete"]: 1}
    assert {job_id: int(runs) for job_id, runs in admin.hgetall(acl_actors.RUNS).items()} == \
        {**{job_id: 2 for job_id in requeued}, job["delete"]: 1}
    assert _state(admin, job["delete"]) == "dead"
    assert admin.zcard("dramatiq:comer.XQ") == 0 and admin.hlen("dramatiq:comer.XQ.msgs") == 0
    entries = _audited(admin)
    assert [entry["action"] for entry in entries] == [
        "dashboard requeue", "dashboard delete", "retry job", "bulk retry", "requeue all dead letters"], entries
    assert [entries[0]["job_id"], entries[1]["job_id"], entries[2]["job_id"], entries[3]["job_ids"]] == \
        [job["requeue"], job["delete"], job["retry"], [job["bulk"]]]
    assert entries[1]["removed"] is True and entries[4]["count"] == 1
    _refused_nothing(admin, "the dead-letter actions")


def test_operators_job_queue_and_periodic_actions_run_as_the_acl_user(tmp_path, acl_redis, monkeypatch):
    """The console's cancel (a job page's form), run now (its script), bulk run now (JSON) and
    bulk cancel (the jobs page's form, every job a search matches), queue pause, purge and
    resume, the dashboard's Delete on a waiting job, and a periodic job's "run now" (twice,
    with one Idempotency-Key), as the app's
    ACL user with a real worker: each takes effect in Redis, what should run runs once, what
    was cancelled or purged never, each is audited, and ACL LOG stays empty."""
    from foodapp.jobs import status_key
    from foodapp.periodic import PERIODIC
    from tests.runs import counts, read_runs
    from tests.test_queue_control import PAUSED_LOG

    admin = acl_redis.client(decode_responses=True)
    app = _as_the_acl_user(monkeypatch, acl_redis, FOODAPP_PERIODIC_JOBS='cena = 0 3 * * * comer ["cena"]')
    worker = Worker(tmp_path, acl_redis.url, queues=("comer",), env=APP_ENV)
    try:
        worker.start()
        later = {name: app.get(f"/comer/{item}?delay=300", status=202).json["job_id"] for name, item in (
            ("cancel", "flan"), ("run_now", "tortilla"), ("bulk_a", "gazpacho"), ("bulk_b", "paella"),
            ("search_a", "sopa fria"), ("search_b", "sopa fria"))}
        assert {_state(admin, job_id) for job_id in later.values()} == {"scheduled"}

        answer = _console_post(app, f"/ops/api/jobs/{later['run_now']}/run-now")
        assert answer.status_int == 200 and answer.json["state"] == "queued", answer.text
        answer = _console_post(app, "/ops/api/jobs/bulk", {"action": "run-now",
                                                           "ids": [later["bulk_a"], later["bulk_b"]]})
        assert answer.status_int == 200 and answer.json["done"] == 2, answer.text
        # A job page's Cancel button (a form with the page's token), and the jobs page's bulk
        # form on every scheduled job the search for "sopa fria" matches.
        page = app.get(f"/ops/jobs/{later['cancel']}", status=200)
        assert next(f for f in page.forms.values() if f.action.endswith("/cancel")).submit().status_int == 303
        found = app.get("/ops/jobs", params={"item": "sopa fria", "state": "scheduled"}, status=200)
        form = found.forms["bulk"]
        form["scope"] = "search"
        assert form.submit("action", value="cancel").status_int == 303
        for name in ("cancel", "search_a", "search_b"):
            assert _state(admin, later[name]) == "cancelled", name
            assert not admin.hexists(status_key(later[name]), "delayed"), name
        # The periodic page's "Run now", pressed twice with one key: one job.
        periodic = re.search(r'data-csrf-token="([^"]+)"', app.get("/ops/periodic", status=200).text).group(1)
        fired = [app.post("/ops/api/periodic/cena/run", headers={"X-CSRF-Token": periodic, "Idempotency-Key": "acl"},
                          status="*") for _ in range(2)]
        assert [f.status_int for f in fired] == [202, 202], [f.text for f in fired]
        assert fired[0].json["job_id"] == fired[1].json["job_id"] and fired[1].json["replayed"] is True
        ran = [later["run_now"], later["bulk_a"], later["bulk_b"], fired[0].json["job_id"]]
        assert json.loads(admin.hget(PERIODIC, "last:cena"))["job_id"] == ran[-1]
        wait_until(lambda: all(_state(admin, job_id) == "done" for job_id in ran), 60,
                   f"run now's jobs to run\n{worker.output()[-3000:]}", interval=0.1)
        _refused_nothing(admin, "the job actions and the periodic run now")

        # Queue control: paused, three orders wait; the dashboard deletes one, the purge cancels
        # the other two; resumed, an order runs.
        answer = _console_post(app, "/ops/api/queues/comer/pause")
        assert answer.status_int == 200, answer.text
        assert json.loads(admin.hget("foodapp:paused", "comer"))["by"] == "anonymous"
        wait_until(lambda: PAUSED_LOG.format("anonymous") in worker.output(), 30, "the worker to see the pause")
        waiting = [app.get(f"/comer/{item}", status=202).json["job_id"] for item in ("pera", "kiwi", "uva")]
        rids = admin.lrange("dramatiq:comer", 0, -1)
        assert len(rids) == 3, rids
        # The dashboard's Delete on a waiting job (its standard tab: a list, so LREM).
        token = re.search(r'name="__dd_csrf" value="(\w+)"', app.get("/jobs/queues/comer", status=200).text).group(1)
        app.post("/jobs/delete-message", {"__dd_csrf": token, "queue": "comer", "id": rids[2]}, status=302)
        assert admin.lrange("dramatiq:comer", 0, -1) == rids[:2] and not admin.hexists("dramatiq:comer.msgs", rids[2])
        answer = _console_post(app, "/ops/api/queues/comer/purge", {"confirm": "comer"})
        assert answer.status_int == 200 and answer.json["purged"] == 2, answer.text
        assert [_state(admin, job_id) for job_id in waiting[:2]] == ["cancelled", "cancelled"]
        assert admin.llen("dramatiq:comer") == 0
        answer = _console_post(app, "/ops/api/queues/comer/resume")
        assert answer.status_int == 200 and answer.json["was_paused"]["by"] == "anonymous", answer.text
        assert not admin.hexists("foodapp:paused", "comer")
        after = app.get("/comer/postre", status=202).json["job_id"]
        wait_until(lambda: _state(admin, after) == "done", 60, f"an order after the resume\n{worker.output()[-3000:]}",
                   interval=0.1)
    finally:
        worker.stop()
    cancelled = [later[name] for name in ("cancel", "search_a", "search_b")] + waiting[:2]
    assert counts(read_runs(admin, ran + waiting + cancelled + [after])) == {
        **{job_id: 1 for job_id in ran + [after]}, **{job_id: 0 for job_id in cancelled + waiting}}
    assert {_state(admin, job_id) for job_id in cancelled} == {"cancelled"}
    entries = _audited(admin)
    assert [entry["action"] for entry in entries] == [
        "run-now job", "bulk run-now", "cancel job", "bulk cancel", "run periodic job now", "pause queue",
        "dashboard delete", "purge queue", "resume queue"], entries
    assert entries[3]["count"] == 2 and entries[3]["query"] == {"item": "sopa fria", "state": "scheduled"}
    assert (entries[6]["job_id"], entries[6]["removed"], entries[7]["count"]) == (waiting[2], True, 2)
    _refused_nothing(admin, "the job actions, queue control and periodic run now")
