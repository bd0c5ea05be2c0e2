"""A writer's own connection (foodapp/connection.py): orders and group commits call their
script without the pool, and still find the master again after whatever closed it."""
import json
import logging
import os
import signal
import socket
import struct
import threading

import dramatiq
import pytest
import redis

from foodapp import jobs
from foodapp.connection import OwnConnection, ThreadConnections
from tests.servers import RedisServer, wait_until


def stored_jobs(client):
    return sorted(key for key in client.scan_iter("foodapp:job:*") if key.count(":") == 2)


def kill_others(client):
    """Close every connection to the server but ``client``'s own."""
    me = client.client_id()
    for line in client.client_list():
        if int(line["id"]) != me:
            client.client_kill_filter(_id=line["id"])


def test_an_order_on_a_connection_the_server_closed_is_stored_at_once_and_once(app, redis_client, caplog):
    app.get("/comer/primero", status=202)
    kill_others(redis_client)
    with caplog.at_level(logging.WARNING):
        answer = app.get("/comer/segundo", status=202).json
    assert not [r for r in caplog.records if "trying again" in r.getMessage()], caplog.text
    assert redis_client.hget(jobs.status_key(answer["job_id"]), "state") == "queued"
    assert len(stored_jobs(redis_client)) == 2
    assert redis_client.llen("dramatiq:comer") == 2


def test_an_order_after_redis_restarted_is_stored_at_once(tmp_path, monkeypatch, caplog):
    from tests.conftest import make_app

    server = RedisServer(tmp_path).start()
    try:
        monkeypatch.setenv("FOODAPP_REDIS_URL", server.url)
        app = make_app()
        app.get("/comer/antes", status=202)
        server.stop()
        server = RedisServer(tmp_path, port=server.port).start()  # empty: no scripts, no jobs
        with caplog.at_level(logging.WARNING):
            answer = app.get("/comer/despues", status=202).json
        assert not [r for r in caplog.records if "trying again" in r.getMessage()], caplog.text
        client = server.client(decode_responses=True)
        assert client.hget(jobs.status_key(answer["job_id"]), "state") == "queued"
        assert client.lrange("dramatiq:comer", 0, -1) and len(stored_jobs(client)) == 1
        client.close()
        dramatiq.get_broker().client.close()
    finally:
        server.stop()


def connections_made(client):
    return client.info("stats")["total_connections_received"]


def test_each_thread_calls_on_a_connection_of_its_own_and_keeps_it(redis_server, redis_client):
    client = redis.Redis.from_url(redis_server.url)
    script = client.register_script("return redis.call('incr', KEYS[1])")
    client.script_load(script.script)
    connections = ThreadConnections(client)
    before = connections_made(redis_client)

    def calls():
        for _ in range(5):
            connections.own.call(script, ["calls"], [])

    threads = [threading.Thread(target=calls) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert redis_client.get("calls") == "15"
    assert connections_made(redis_client) - before == 3  # one a thread, for all its calls
    client.close()


def test_a_forked_child_calls_on_a_connection_of_its_own(redis_server, redis_client):
    client = redis.Redis.from_url(redis_server.url)
    script = client.register_script("return redis.call('incr', KEYS[1])")
    own = OwnConnection(client)
    own.call(script, ["calls"], [])
    before = connections_made(redis_client)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer its call's reply (or the error), and leave at once
        try:
            answer = json.dumps(own.call(script, ["calls"], [])[0])
        except BaseException as error:  # noqa: B036 - reported to the parent, whatever it is
            answer = json.dumps(repr(error))
        os.write(write, answer.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert child == 2, child
    assert connections_made(redis_client) - before == 1  # the child's own
    assert own.call(script, ["calls"], [])[0] == 3  # and the parent's is still its own
    assert connections_made(redis_client) - before == 1
    client.close()


def test_a_call_goes_to_the_master_the_pool_names_now_not_the_one_it_was_connected_to(tmp_path):
    """Nothing lost: the replica policy (foodapp/replicas.py) decides how many replicas a write
    waits for from the master the pool names (its check asks the Sentinels through
    ``get_master_address``, which moves the pool's own idle connections to a new master). A
    connection of a writer's own must follow: the soak lost 261 orders that web threads wrote,
    with WAIT 0, to a cut-off old master still taking writes, after the policy had judged the
    newly promoted one (then without a replica) safe to write to alone."""
    from redis.sentinel import Sentinel as SentinelClient

    from tests.sentinel import MASTER_NAME, Sentinel

    old, new = RedisServer(tmp_path).start(), RedisServer(tmp_path).start()
    sentinels = [Sentinel(tmp_path, old.port, 5000, 60000) for _ in range(3)]
    try:
        for sentinel in sentinels:
            sentinel.start()

        def named(port):
            try:
                return all(int(s.client().sentinel_master(MASTER_NAME)["port"]) == port for s in sentinels)
            except redis.RedisError:
                return False
        wait_until(lambda: named(old.port), 10, "the Sentinels to name the first master", interval=0.05)
        client = SentinelClient([("127.0.0.1", s.port) for s in sentinels]).master_for(MASTER_NAME, socket_timeout=2)
        script = client.register_script("return redis.call('set', KEYS[1], ARGV[1])")
        own = OwnConnection(client)
        own.call(script, ["first"], ["1"])
        assert old.client().get("first") == b"1"

        # The Sentinels now name another master; the old one still takes writes (it is cut
        # off from them, say), as in a partition before it is made a replica.
        for sentinel in sentinels:
            s = sentinel.client()
            s.sentinel_remove(MASTER_NAME)
            s.sentinel_monitor(MASTER_NAME, "127.0.0.1", new.port, 2)
            s.close()
        wait_until(lambda: named(new.port), 10, "the Sentinels to name the new master", interval=0.05)
        assert tuple(client.connection_pool.get_master_address()) == ("127.0.0.1", new.port)  # the policy's check

        own.call(script, ["second"], ["2"])
        assert new.client().get("second") == b"2", "the write went to the old master"
        assert old.client().get("second") is None
        client.close()
    finally:
        for sentinel in sentinels:
            sentinel.stop()
        old.stop()
        new.stop()


def test_a_call_to_a_server_that_closed_the_kept_connection_before_it_is_refused_not_unknown(tmp_path):
    """A kept connection whose server is gone before the call is made again first: the
    error is the refusal of that connect ("Error 111 connecting"), which proves nothing ran,
    so the web answers redis_unavailable, not outcome_unknown."""
    server = RedisServer(tmp_path).start()
    client = redis.Redis.from_url(server.url)
    script = client.register_script("return redis.call('incr', KEYS[1])")
    own = OwnConnection(client)
    try:
        own.call(script, ["calls"], [])
        server.stop()
        try:
            own.call(script, ["calls"], [])
        except redis.ConnectionError as error:
            assert "connecting" in str(error), error
        else:
            raise AssertionError("a call to a stopped server succeeded")
    finally:
        client.close()
        server.stop()


def test_a_call_whose_server_dies_while_it_runs_tells_an_unknown_outcome(tmp_path):
    """Nothing hidden: a call the server took and died running (a failover drill caught an
    order answered 503 redis_unavailable that ran) is told as the lost connection, whose
    outcome is unknown, never as a later refusal to connect."""
    server = RedisServer(tmp_path, extra=("--busy-reply-threshold", "50")).start()
    client = redis.Redis.from_url(server.url)
    watcher = redis.Redis.from_url(server.url)
    slow = client.register_script(
        "redis.call('incr', KEYS[1]) local t = redis.call('time') local until_ = t[1] + 10 "
        "while tonumber(redis.call('time')[1]) < until_ do end return 1")
    own = OwnConnection(client)
    errors = []

    def call():
        try:
            own.call(slow, ["calls"], [])
        except redis.ConnectionError as error:
            errors.append(error)

    try:
        own.call(client.register_script("return 1"), [], [])  # a kept connection
        caller = threading.Thread(target=call)
        caller.start()

        def busy():
            try:
                watcher.ping()
            except redis.exceptions.BusyLoadingError:
                return False
            except redis.ResponseError as error:
                return "BUSY" in str(error)
            return False

        wait_until(busy, 10, "the slow script to be running")
        server.kill()
        caller.join(30)
        assert len(errors) == 1, errors
        assert "connecting" not in str(errors[0]), errors[0]
    finally:
        client.close()
        watcher.close()
        server.stop()


def test_an_own_connection_waits_with_the_kernels_timeouts_not_pythons(redis_server):
    """Its socket blocks, with redis.socket_timeout as the kernel's read and write timeouts:
    a Python timeout polls before every read and write, one more GIL hand-over each."""
    client = redis.Redis.from_url(redis_server.url, socket_timeout=1.5)
    own = OwnConnection(client)
    assert own.call(client.register_script("return 1"), [], [])[0] == 1
    sock = own._connection._sock
    assert sock.gettimeout() is None
    for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
        assert struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("ll"))) == (1, 500000)
    client.close()


def test_a_call_the_server_does_not_answer_in_time_is_a_timeout_that_names_the_setting(tmp_path):
    """A master that stops answering (stopped, or a hung host) ends a call after
    redis.socket_timeout with a TimeoutError that says so, never a wait without end; the
    next call is made on a new connection."""
    server = RedisServer(tmp_path).start()
    client = redis.Redis.from_url(server.url, socket_timeout=0.5)
    script = client.register_script("return redis.call('incr', KEYS[1])")
    own = OwnConnection(client)
    try:
        assert own.call(script, ["calls"], [])[0] == 1
        os.kill(server.pid, signal.SIGSTOP)
        try:
            with pytest.raises(redis.TimeoutError, match=r"no answer within redis.socket_timeout, 0.5 s"):
                own.call(script, ["calls"], [])
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert own.call(script, ["calls"], [])[0] == 3  # the unanswered call ran once the server went on
    finally:
        client.close()
        server.stop()
