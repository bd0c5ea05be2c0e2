"""Redis message ids: unique in a process, and a forked child (Dramatiq's worker processes,
say) never makes one its parent made."""
import os
import uuid

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


def test_job_ids_are_random_version_4_uuids_unique_across_a_fork():
    """Job ids (foodapp/job_ids.py) are read from os.urandom in bulk: each is a version 4
    UUID as Dramatiq's own, none repeats, and a forked child never hands out the bytes its
    parent had read ahead."""
    from foodapp.job_ids import new_job_id

    ids = [new_job_id() for _ in range(3000)]  # more than one read ahead
    assert len(set(ids)) == len(ids)
    for job_id in ids:
        parsed = uuid.UUID(job_id)
        assert str(parsed) == job_id and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next ids to the parent, then leave at once
        os.write(write, " ".join(new_job_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    child_ids = os.read(read, 1000).decode().split()
    os.close(read)
    os.waitpid(pid, 0)
    parent_ids = [new_job_id() for _ in range(5)]
    assert len(child_ids) == 5 and not set(child_ids) & set(parent_ids + ids)


def test_an_order_is_answered_with_a_job_id_of_its_own(app):
    answers = [app.get(f"/comer/plato{n}", status=202).json for n in range(3)]
    menu = app.post_json("/menu", [{"comer": "pan"}, {"beber": "agua"}], status=202).json
    job_ids = [a["job_id"] for a in answers] + [job["job_id"] for job in menu["jobs"]] + [menu["batch_id"]]
    assert len(set(job_ids)) == len(job_ids)
    assert all(uuid.UUID(job_id).version == 4 for job_id in job_ids)
