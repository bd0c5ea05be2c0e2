"""The `foodapp` command: enqueue, show, dead letters, requeue, stats, from the same ini."""
import json
import subprocess

import dramatiq
import pytest

from tests.conftest import drain
from tests.servers import BIN, TESTING_INI, free_port

pytestmark = pytest.mark.e2e


def foodapp(redis_url, *args):
    result = subprocess.run([BIN / "foodapp", "-c", TESTING_INI, *args], capture_output=True, text=True,
                            timeout=60, env={"FOODAPP_REDIS_URL": redis_url, "PATH": str(BIN)})
    return result.returncode, (json.loads(result.stdout) if result.stdout.strip() else None), result.stderr


def test_enqueue_show_stats(app, broker, worker, redis_server):
    code, job, _ = foodapp(redis_server.url, "enqueue", "comer", "jamón")
    assert code == 0 and job["item"] == "jamón"
    drain(broker, worker)
    code, shown, _ = foodapp(redis_server.url, "show", job["job_id"])
    assert code == 0 and shown["state"] == "done" and shown["args"] == ["jamón"]
    code, counts, _ = foodapp(redis_server.url, "stats")
    assert counts["queues"]["comer"]["done"] == 1 and counts["queues"]["comer"]["queued"] == 0
    assert foodapp(redis_server.url, "show", "00000000-0000-0000-0000-000000000000")[0] == 3
    code, _, error = foodapp(redis_server.url, "enqueue", "comer", "a\tb")
    assert code == 2 and "control character" in error


def test_dead_letters_are_listed_and_requeued(app, broker, worker, redis_server):
    attempts = []

    def picky(item):
        attempts.append(item)
        if len(attempts) <= 3:  # testing.ini: 2 retries, so the first 3 runs fail
            raise ValueError("not today")

    dramatiq.Actor(picky, broker=broker, actor_name="picky", queue_name="comer", priority=0, options={})
    message = broker.get_actor("picky").send("caracoles")
    drain(broker, worker)

    code, letters, _ = foodapp(redis_server.url, "dead-letters", "comer")
    assert code == 0 and [(l["job_id"], l["state"]) for l in letters] == [(message.message_id, "dead")]
    assert "not today" in letters[0]["error"]

    code, requeued, _ = foodapp(redis_server.url, "requeue", "comer")
    assert requeued == {"queue": "comer", "requeued": 1}
    drain(broker, worker)
    assert foodapp(redis_server.url, "dead-letters", "comer")[1] == []
    job = broker.jobs.get(message.message_id)
    assert job["state"] == "done" and "requeued" in [e["event"] for e in job["events"]]


def test_redis_down_is_a_clear_error():
    code, _, error = foodapp(f"redis://127.0.0.1:{free_port()}/0", "stats")
    assert code == 4 and "Redis did not answer" in error


def test_hash_password_makes_a_hash_the_login_accepts():
    from foodapp.security import check_password

    result = subprocess.run([BIN / "foodapp", "hash-password"], input="cocina secreta\n", capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    stored = result.stdout.strip()
    assert stored.startswith("scrypt$") and check_password("cocina secreta", stored)
    assert not check_password("otra", stored)
