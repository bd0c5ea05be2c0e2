"""Log lines written while a job runs carry its job id; the workers, run as production runs
them (`dramatiq --skip-logging`, logging from the ini), write JSON lines only."""
import json
import logging

import pytest

from foodapp.logcontext import JOB_ID, TextFormatter, install
from tests import log_actors
from tests.servers import BIN, ROOT, TESTING_INI, Process, wait_until

pytestmark = pytest.mark.e2e


def json_logging_ini(directory):
    """testing.ini with production.ini's [logging] sections (JSON lines)."""
    marker = "###\n# logging configuration"
    testing, production = TESTING_INI.read_text(), (ROOT / "production.ini").read_text()
    assert marker in testing and marker in production
    ini = directory / "json-logs.ini"
    ini.write_text(testing.split(marker)[0] + marker + production.split(marker)[1])
    return ini


def test_a_real_worker_logs_json_lines_with_the_job_id_of_the_job_running(tmp_path, app, broker, redis_server):
    ini = json_logging_ini(tmp_path)
    worker = Process(
        [BIN / "dramatiq", "foodapp.worker", "tests.log_actors", "--skip-logging", "--processes", "1",
         "--threads", "2", "--worker-shutdown-timeout", "20000", "--queues", "comer"],
        tmp_path / "worker.log",
        env={"FOODAPP_INI": str(ini), "FOODAPP_REDIS_URL": redis_server.url, "PYTHONPATH": str(ROOT)},
    )
    chatty = log_actors.declare(broker)
    good, bad = chatty.send("pan"), chatty.send("fail")
    try:
        worker.start()
        for message, state in ((good, "done"), (bad, "dead")):
            wait_until(lambda: app.get(f"/api/jobs/{message.message_id}").json["state"] == state, 60,
                       f"job {message.message_id} to be {state}\n{worker.output()}")
    finally:
        worker.stop()

    lines = [line for line in worker.output().splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"a log line of the worker is not JSON: {line!r}\n{worker.output()}") from None
    by_message = {}
    for record in records:
        by_message.setdefault(record["message"], []).append(record)
    assert [r["job_id"] for r in by_message["preparing pan"]] == [good.message_id]
    assert [r["job_id"] for r in by_message["preparing fail"]] == [bad.message_id]
    # Dramatiq's own lines about a job carry it too.
    failed = [r for r in records if r["message"].startswith("Failed to process message")]
    assert failed and {r["job_id"] for r in failed} == {bad.message_id}, records
    # And lines written outside any job carry none.
    outside = [r for r in records if r["message"].startswith("Worker process is ready")]
    assert outside and all(r["job_id"] is None for r in outside), records


def test_plain_lines_end_with_the_job_id_only_during_a_job():
    install()
    install()  # once is enough; twice changes nothing
    formatter = TextFormatter("%(levelname)s %(message)s")
    logger = logging.getLogger("foodapp.tests.plain")

    def line(message):
        record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, message, (), None)
        return formatter.format(record)

    assert line("outside") == "INFO outside"
    token = JOB_ID.set("f12f8600-a9e9-4ab8-8805-f1983f209522")
    try:
        assert line("inside") == "INFO inside [job f12f8600-a9e9-4ab8-8805-f1983f209522]"
    finally:
        JOB_ID.reset(token)
    assert line("after") == "INFO after"


@pytest.mark.parametrize("ini", ["development.ini", "testing.ini", "production.ini"])
def test_every_profiles_log_lines_carry_the_job_id(ini):
    """make run's logs (development.ini) too, not only production's JSON and testing's lines:
    each profile's formatters put the running job's id on what is logged during a job."""
    import configparser
    from pathlib import Path

    parser = configparser.ConfigParser(interpolation=None)
    parser.read(Path(__file__).resolve().parent.parent / ini)
    names = [name.strip() for name in parser["formatters"]["keys"].split(",")]
    for name in names:
        section = parser[f"formatter_{name}"]
        carries = section.get("class") == "foodapp.logcontext.TextFormatter" or "job_id" in section.get("format", "")
        assert carries, f"{ini} [formatter_{name}] does not show the job id (class TextFormatter, or %(job_id)s)"
