"""A test-only actor that counts its runs per job and logs while it runs:
`dramatiq foodapp.worker tests.action_actors` (tests/test_job_actions.py).

Each run adds one to the hash ``test:runs`` (job id -> runs), so a test can tell a job
that never ran, ran once, or ran twice. An item in the set ``test:failing`` makes it raise.
"""
import logging

import dramatiq
from dramatiq.middleware import CurrentMessage

logger = logging.getLogger("foodapp.tests.action_actors")

RUNS = "test:runs"
FAILING = "test:failing"


def counted(item):
    client = dramatiq.get_broker().client
    job_id = CurrentMessage.get_current_message().message_id
    client.hincrby(RUNS, job_id, 1)
    logger.info("counting %s", item)
    if client.sismember(FAILING, item):
        raise ValueError(f"{item} is not ready")
    return item


def declare(broker):
    return dramatiq.Actor(counted, broker=broker, actor_name="counted", queue_name="comer", priority=0,
                          options={"max_retries": 0})


declare(dramatiq.get_broker())
