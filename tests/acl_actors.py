"""A test-only actor for workers that log in as deploy/redis's ACL user:
`dramatiq foodapp.worker tests.acl_actors` (tests/test_redis_acl.py).

tests/action_actors.py keeps its counts under ``test:``, a key the app's ACL user may not
touch; this one keeps them under ``foodapp:`` (the user's own keys), so the actor itself
runs as that user. Each run adds one to ``RUNS`` (job id -> runs); an item in ``FAILING``
makes it raise, and with no retries its job goes straight to the dead letters.
"""
import dramatiq
from dramatiq.middleware import CurrentMessage

RUNS = "foodapp:test:acl:runs"
FAILING = "foodapp:test:acl:failing"


def flaky(item):
    client = dramatiq.get_broker().client
    client.hincrby(RUNS, CurrentMessage.get_current_message().message_id, 1)
    if client.sismember(FAILING, item):
        raise ValueError(f"{item} is not ready")
    return item


dramatiq.Actor(flaky, broker=dramatiq.get_broker(), actor_name="flaky", queue_name="comer", priority=0,
               options={"max_retries": 0})
