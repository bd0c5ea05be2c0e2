"""A replicated Redis on this machine: master, replica and three Sentinels on free ports."""
import contextlib
from pathlib import Path

import redis

from foodapp.dev import redis_server_binary

from tests.servers import Process, RedisServer, free_port, wait_until

MASTER_NAME = "foodmaster"


@contextlib.contextmanager
def first_sync_at_once(master):
    """Within it, ``master`` (a redis client) starts a replica's full sync at once instead of
    waiting repl-diskless-sync-delay (Redis' default: 5 s) for more replicas to join it.
    For the setup's first sync only: the delay is put back afterwards, so every resync of a
    failover or a rejoin runs with the configured one."""
    delay = master.config_get("repl-diskless-sync-delay")["repl-diskless-sync-delay"]
    master.config_set("repl-diskless-sync-delay", 0)
    yield
    master.config_set("repl-diskless-sync-delay", delay)


class Sentinel(Process):

    def __init__(self, directory, master_port, down_after_ms, failover_timeout_ms):
        self.port = free_port()
        folder = Path(directory) / f"sentinel-{self.port}"
        folder.mkdir(parents=True)
        conf = folder / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {folder}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n"
            f"sentinel failover-timeout {MASTER_NAME} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        super().__init__([redis_server_binary(), conf, "--sentinel"], folder / "sentinel.log")

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)


class ReplicatedRedis:
    """The seed's production Redis: one master, one replica, three Sentinels (quorum 2)."""

    def __init__(self, directory, down_after_ms=1000, failover_timeout_ms=3000):
        self.directory = Path(directory)
        replica_settings = ["--repl-timeout", "5", "--repl-ping-replica-period", "1"]
        self.master = RedisServer(directory, extra=replica_settings)
        self.replica = RedisServer(directory, extra=[*replica_settings, "--replicaof", "127.0.0.1", str(self.master.port)])
        self.sentinels = [Sentinel(directory, self.master.port, down_after_ms, failover_timeout_ms) for _ in range(3)]
        self.down_after_ms = down_after_ms

    @property
    def sentinel_setting(self):
        return " ".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def start(self):
        self.master.start()
        with first_sync_at_once(self.master.client()):
            self.replica.start()
            wait_until(lambda: self.replica.client().info("replication").get("master_link_status") == "up",
                       20, "the replica to sync")
        for sentinel in self.sentinels:
            sentinel.start()

        def sentinels_agree():
            try:
                states = [s.client().sentinel_master(MASTER_NAME) for s in self.sentinels]
            except redis.RedisError:
                return False
            return all(st["num-other-sentinels"] == 2 and st["num-slaves"] == 1 for st in states)
        wait_until(sentinels_agree, 30, "the sentinels to find each other and the replica", interval=0.2)
        return self

    def master_port(self):
        """The master's port, as a majority of the Sentinels sees it."""
        ports = []
        for sentinel in self.sentinels:
            try:
                ports.append(int(sentinel.client().sentinel_master(MASTER_NAME)["port"]))
            except redis.RedisError:
                continue
        return max(set(ports), key=ports.count) if ports else None

    def master_client(self):
        port = self.master_port()
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, decode_responses=True)

    def stop(self):
        for process in (*self.sentinels, self.replica, self.master):
            process.stop()


@contextlib.contextmanager
def running(directory, **options):
    """A started ReplicatedRedis (``options``: down_after_ms, failover_timeout_ms), stopped
    at the end even when starting it failed half way."""
    redis_ = ReplicatedRedis(directory, **options)
    try:
        yield redis_.start()
    finally:
        redis_.stop()
