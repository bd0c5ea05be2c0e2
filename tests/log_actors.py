"""A test-only actor that logs: `dramatiq foodapp.worker tests.log_actors` (tests/test_job_logs.py)."""
import logging

import dramatiq

logger = logging.getLogger("foodapp.tests.log_actors")


def chatty(item):
    logger.info("preparing %s", item)
    if item == "fail":
        raise ValueError(f"cannot prepare {item}")
    return item


def declare(broker):
    return dramatiq.Actor(chatty, broker=broker, actor_name="chatty", queue_name="comer", priority=0,
                          options={"max_retries": 0})


declare(dramatiq.get_broker())
