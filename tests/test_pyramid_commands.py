"""Pyramid's own commands on foodapp's ini files, run as a user runs them: `pserve production.ini
http_port=...` (what supervisor/production.conf starts), `pshell` and `proutes`, against real
Redis servers on free ports (a single one for development.ini; master, replica and Sentinels
for production.ini, which finds its master through Sentinel).
"""
import re
import subprocess

import pytest

from foodapp.security import hash_password
from tests.sentinel import ReplicatedRedis
from tests.servers import BIN, ROOT, Process, free_port, http, wait_until

pytestmark = pytest.mark.e2e

SHELL = (
    "print('MAX_BATCH', registry.foodapp.orders_max_batch)\n"
    "import dramatiq\n"
    "print('PING', dramatiq.get_broker().client.ping())\n"
    "print('ROLE', dramatiq.get_broker().client.info('replication')['role'])\n"
)


def run(command, ini, env, stdin=None, *config_vars):
    return subprocess.run([BIN / command, ini, *config_vars], input=stdin, capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)


def assert_shell_and_routes(ini, env):
    shell = run("pshell", ini, env, SHELL)
    assert shell.returncode == 0, shell.stdout + shell.stderr
    assert "MAX_BATCH 100" in shell.stdout, shell.stdout + shell.stderr
    assert "PING True" in shell.stdout and "ROLE master" in shell.stdout, shell.stdout + shell.stderr

    routes = run("proutes", ini, env)
    assert routes.returncode == 0, routes.stdout + routes.stderr
    for name, pattern in (("order", "/{queue:comer|beber}/{item"), ("job", "/api/jobs/{job_id}"),
                          ("openapi", "/openapi.json"), ("metrics", "/metrics")):
        assert re.search(rf"(?m)^{name}\s+{re.escape(pattern)}", routes.stdout), routes.stdout


@pytest.fixture
def clean_env(monkeypatch):
    """The environment without any FOODAPP_* variable a developer's shell may hold."""
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("FOODAPP_")}


def test_pshell_and_proutes_on_development_ini(redis_server, clean_env):
    env = {**clean_env, "FOODAPP_REDIS_URL": redis_server.url}
    assert_shell_and_routes(ROOT / "development.ini", env)


def test_pserve_pshell_and_proutes_on_production_ini(tmp_path, clean_env):
    # production.ini as it is: it listens on 127.0.0.1 only (the port is http_port=).
    text = (ROOT / "production.ini").read_text()
    assert re.search(r"(?m)^listen = 127\.0\.0\.1:%\(http_port\)s$", text)
    ini = tmp_path / "production.ini"
    # The test's Redis has no ACL users: its default user, not production's named one.
    assert re.search(r"(?m)^redis\.username = foodapp$", text)
    ini.write_text(text.replace("redis.username = foodapp", "redis.username ="))

    redis = ReplicatedRedis(tmp_path).start()
    web = None
    try:
        # The test's Redis and Sentinels have no passwords: production.ini's requirement is off here.
        env = {**clean_env, "FOODAPP_REDIS_SENTINELS": redis.sentinel_setting, "FOODAPP_SECURITY_REQUIRE_PASSWORDS": "false",
               "FOODAPP_DASHBOARD_USERNAME": "ops", "FOODAPP_DASHBOARD_PASSWORD_HASH": hash_password("pw")}
        assert_shell_and_routes(ini, env)

        # Without http_port=, pserve stops and names it.
        missing = run("pserve", ini, env)
        assert missing.returncode != 0 and "http_port" in missing.stderr, missing.stderr

        port = free_port()
        web = Process([BIN / "pserve", ini, f"http_port={port}"], tmp_path / "pserve.log", env=env)
        web.env = env  # exactly this environment, no FOODAPP_* from the test process
        web.start()

        def answers():
            assert web.alive(), web.output()
            try:
                return http("GET", f"http://127.0.0.1:{port}/healthz", timeout=1)[0] == 200
            except OSError:
                return False
        wait_until(answers, 30, f"pserve production.ini http_port={port} to answer")
        status, _, body = http("GET", f"http://127.0.0.1:{port}/comer/platano")
        assert status == 202, body  # stored on the master found through Sentinel, and on its replica (WAIT)
        assert redis.master_client().exists(f"foodapp:job:{body['job_id']}")
        # production.ini's JSON logs.
        wait_until(lambda: '"message"' in web.output(), 10, "a JSON log line from pserve")
    finally:
        if web is not None:
            web.stop()
        redis.stop()
