"""Dead letters: list them, and put them back in their queue (the CLI and the ops page)."""
import dramatiq


def letters(broker, queue):
    """(redis message id, dead-lettered at ms, Message) of every dead letter of ``queue``."""
    key = f"{broker.namespace}:{queue}.XQ"
    ids = broker.client.zrange(key, 0, -1, withscores=True)
    bodies = broker.client.hmget(f"{key}.msgs", [rid for rid, _ in ids]) if ids else []
    for (rid, died_at), body in zip(ids, bodies):
        if body is not None:
            yield rid, died_at, dramatiq.Message.decode(body)


def requeue_all(broker, queue):
    """Each dead letter goes back to its queue: enqueued first, then removed from the dead
    letters, so a crash in between leaves a duplicate (run once: the ledger is keyed by job
    id), never a loss. Returns how many."""
    key = f"{broker.namespace}:{queue}.XQ"
    count = 0
    for rid, _, message in list(letters(broker, queue)):
        broker.enqueue(message.copy(options={"retries": 0, "eta": message.message_timestamp}))
        with broker.client.pipeline() as pipe:
            pipe.zrem(key, rid)
            pipe.hdel(f"{key}.msgs", rid)
            pipe.execute()
        count += 1
    return count
