"""Redis message ids: unique in a process, and a forked child (Dramatiq's worker processes,
say) never makes one its parent made."""
import os

from foodapp.broker import new_redis_message_id


def test_ids_are_unique_and_a_forked_child_uses_another_prefix():
    ids = {new_redis_message_id() for _ in range(10000)}
    assert len(ids) == 10000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next id to the parent, then leave at once
        os.write(write, new_redis_message_id().encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 200).decode()
    os.close(read)
    os.waitpid(pid, 0)
    parent_id = new_redis_message_id()
    assert child_id and child_id not in ids and child_id != parent_id
    assert child_id.rsplit("-", 1)[0] != parent_id.rsplit("-", 1)[0]
