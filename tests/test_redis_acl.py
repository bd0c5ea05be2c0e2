"""Secrets and Redis: the app runs as deploy/redis's ACL user, which can do nothing else;
production refuses to start without the Redis and Sentinel passwords; workers start
without the dashboard's credentials.

Real redis-server (with the aclfile deploy/redis/render-acl.sh makes from
deploy/redis/users.acl.in), real waitress and a real `dramatiq foodapp.worker`."""
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
