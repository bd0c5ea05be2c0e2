"""The seed's production Redis for the soak: a master, a replica and three Sentinels, with
the faults it must survive (the master's kill -9, its host cut off from the others).

Two placements:

- in network namespaces (root and `ip netns`): hosts A, B and C on a bridge, as
  tests/test_drill_hosts.SeedProduction lays them out: the master on A (6379), the replica
  on B, a Sentinel on each of A, B and C (26379). This namespace is HOST 0: it reaches
  every host over the bridge, so the web and workers started here follow the Sentinels, and
  a host can be partitioned from the other two (Network.partition) while HOST 0 still
  reaches it, as a client on the far side of a split would;
- on loopback (no namespaces here): the same five servers on free ports of 127.0.0.1; the
  master can be killed, but no host can be partitioned.

A server that comes back (the killed master started again, empty; the cut-off master, with
what it wrote alone) runs with ``replica-priority 0`` until it is the new master's replica
and in sync: Sentinel must not promote it before it holds the data (the Redis docs' hazard
with persistence off: a failover right after the first one, even a false one on a busy
machine, would pick the empty server and the new master would replicate its emptiness).

Every wait polls a condition with a deadline; every process is started by ``start`` or a
fault and stopped by ``stop``, which also removes the namespaces.
"""
import itertools
import os
import subprocess
import threading
import time
from pathlib import Path

import redis

from foodapp.dev import redis_server_binary
from tests.netns import Network, free_subnet, ip
from tests.sentinel import first_sync_at_once
from tests.servers import Process, free_port, wait_until

MASTER_NAME = "foodmaster"
REDIS_HOSTS = ("A", "B")
SENTINEL_HOSTS = ("A", "B", "C")
#: replica-priority of a promotable replica (Redis' default); 0 while a server resyncs.
PRIORITY = 100

_networks = itertools.count()


def namespaces_available():
    """(True, "") when this process can make network namespaces, else (False, why).

    tests.netns.require_namespaces makes the same check but skips a pytest test; the soak
    runs outside pytest too, and only leaves the partition fault out.
    """
    if os.geteuid() != 0:
        return False, "not root: network namespaces need root (ip netns add)"
    probe = f"fs{os.getpid() % 100000}probe"
    try:
        result = ip("netns", "add", probe, check=False)
    except FileNotFoundError:
        return False, "no `ip` command (apt-get install iproute2)"
    except subprocess.TimeoutExpired:
        return False, "`ip netns add` did not answer"
    if result.returncode != 0:
        return False, f"cannot create network namespaces here: {result.stderr.strip()}"
    ip("netns", "delete", probe, check=False)
    return True, ""


def _free_subnet():
    """A 10.x.61.0/24 no route of this machine uses (the host drills take 10.x.47.0/24, so a
    drill and a soak started at the same moment never pick the same one)."""
    return free_subnet(61, "the soak's hosts")


class SoakNetwork(Network):
    """tests.netns.Network with its own names and subnet range (see _free_subnet)."""

    def __init__(self, names=SENTINEL_HOSTS):
        self.tag = f"s{os.getpid() % 100000}{next(_networks)}"
        self.bridge = f"{self.tag}br"
        subnet = _free_subnet()
        hosts = list(subnet.hosts())
        self.prefix = subnet.prefixlen
        self.gateway = str(hosts[0])
        self.names = names
        self.address = {name: str(hosts[10 + i]) for i, name in enumerate(names)}


class Cluster:
    """Master + replica + three Sentinels (quorum 2); see the module's docstring."""

    def __init__(self, directory, namespaces=True, down_after_ms=2000, failover_timeout_ms=4000):
        self.directory = Path(directory)
        self.net = SoakNetwork() if namespaces else None
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        if self.net:
            self.redis_addr = {h: (self.net.address[h], 6379) for h in REDIS_HOSTS}
            self.sentinel_addr = {h: (self.net.address[h], 26379) for h in SENTINEL_HOSTS}
        else:
            self.redis_addr = {h: ("127.0.0.1", free_port()) for h in REDIS_HOSTS}
            self.sentinel_addr = {h: ("127.0.0.1", free_port()) for h in SENTINEL_HOSTS}
        self.redis_procs = {}     # host -> its current redis-server Process
        self.processes = []       # every process started, for stop()
        self._starts = itertools.count(1)
        self.partitioned = None   # the host cut off from the others, if any
        self._net_up = False

    # ----------------------------------------------------------------------------------
    # Where things are.

    @property
    def placement(self):
        if self.net:
            return ("network namespaces: Redis master on A, replica on B, a Sentinel on each of A, B, C "
                    f"({', '.join(f'{h} {a}' for h, a in self.net.address.items())}); web and workers in HOST 0")
        return "loopback: master, replica and three Sentinels on free ports of 127.0.0.1"

    @property
    def sentinel_setting(self):
        """FOODAPP_REDIS_SENTINELS for the web and the workers."""
        return " ".join(f"{address}:{port}" for address, port in self.sentinel_addr.values())

    def host_of(self, address, port):
        return next((h for h, a in self.redis_addr.items() if a == (address, int(port))), None)

    def other(self, host):
        return next(h for h in REDIS_HOSTS if h != host)

    def redis(self, host, **options):
        address, port = self.redis_addr[host]
        return redis.Redis(host=address, port=port, socket_timeout=options.pop("socket_timeout", 5),
                           socket_connect_timeout=2, **options)

    def sentinel(self, host):
        address, port = self.sentinel_addr[host]
        return redis.Redis(host=address, port=port, socket_timeout=2, socket_connect_timeout=2)

    def views(self, sentinels=SENTINEL_HOSTS):
        """{sentinel host: the Redis host it names master, or None when it does not answer}."""
        seen = {}
        for host in sentinels:
            try:
                state = self.sentinel(host).sentinel_master(MASTER_NAME)
                seen[host] = self.host_of(state["ip"], state["port"])
            except (redis.RedisError, OSError):
                seen[host] = None
        return seen

    def master(self, sentinels=SENTINEL_HOSTS):
        """The Redis host a majority of all three Sentinels names master (asking only
        ``sentinels``), or None."""
        named = [host for host in self.views(sentinels).values() if host]
        for host in REDIS_HOSTS:
            if named.count(host) * 2 > len(SENTINEL_HOSTS):
                return host
        return None

    def master_client(self, **options):
        host = self.master()
        assert host, f"no master named by a majority of the Sentinels: {self.views()}"
        return self.redis(host, **options)

    def info(self, host):
        try:
            return self.redis(host, socket_timeout=2).info("replication")
        except (redis.RedisError, OSError):
            return {}

    def healthy(self, promotable=True):
        """The master's host when the whole topology is back to normal, else None: a majority
        of the Sentinels (all three) names one master, the other Redis is its replica, in
        sync, and every Sentinel sees that replica up (and, with ``promotable``, with its
        normal replica-priority) and the two other Sentinels. Only then can the next fault
        be survived."""
        if self.partitioned:
            return None
        views = self.views()
        master = views["A"]
        if master is None or any(v != master for v in views.values()):
            return None
        replica = self.other(master)
        info = self.info(replica)
        address, port = self.redis_addr[master]
        if (info.get("role") != "slave" or info.get("master_link_status") != "up"
                or info.get("master_sync_in_progress") not in (0, "0")
                or (info.get("master_host"), int(info.get("master_port", 0))) != (address, port)):
            return None
        master_info = self.info(master)
        if master_info.get("role") != "master" or int(master_info.get("connected_slaves", 0)) < 1:
            return None
        for host in SENTINEL_HOSTS:
            try:
                state = self.sentinel(host).sentinel_master(MASTER_NAME)
                replicas = self.sentinel(host).sentinel_slaves(MASTER_NAME)
            except (redis.RedisError, OSError):
                return None
            if int(state.get("num-other-sentinels", 0)) != 2:
                return None
            up = [r for r in replicas if self.host_of(r["ip"], r["port"]) == replica
                  and set(str(r.get("flags", "")).split(",")) == {"slave"}
                  and r.get("master-link-status") == "ok"
                  and (not promotable or r.get("slave-priority") == PRIORITY)]
            if not up:
                return None
        return master

    def set_priority(self, host, priority):
        """CONFIG SET replica-priority on ``host``'s server (HOST 0 reaches it, cut off or not)."""
        self.redis(host, socket_timeout=5).config_set("replica-priority", priority)

    def in_sync(self, host, master):
        """Whether ``host``'s server itself says it is ``master``'s replica, linked, in sync."""
        info = self.info(host)
        address, port = self.redis_addr[master]
        return (info.get("role") == "slave" and info.get("master_link_status") == "up"
                and info.get("master_sync_in_progress") in (0, "0")
                and (info.get("master_host"), int(info.get("master_port", 0))) == (address, port))

    def rejoin(self, host, timeout=120, what=None):
        """``host``'s server (back with replica-priority 0) becomes the master's replica and
        syncs; then it is made promotable again, and every Sentinel must see that.

        Promotable again as soon as it holds the master's data, which its own INFO tells: the
        Sentinels refresh a replica's INFO every 10 s, and waiting for them to see it in sync
        while still unpromotable, then again to see its new priority, took two such rounds.
        healthy() still waits for every Sentinel to see it in sync and promotable."""
        master = self.other(host)
        what = what or f"{host}'s redis-server to come back as {master}'s replica, in sync"
        wait_until(lambda: self.in_sync(host, master), timeout, what, interval=0.2)
        self.set_priority(host, PRIORITY)
        wait_until(lambda: self.healthy() == master, 60,
                   f"the Sentinels to see {host}'s replica promotable again (replica-priority {PRIORITY})",
                   interval=0.2)

    # ----------------------------------------------------------------------------------
    # Processes.

    def _run(self, host, argv, log_name):
        prefix = self.net.exec_prefix(host) if self.net else []
        process = Process([*prefix, *argv], self.directory / f"{log_name}.log")
        self.processes.append(process)
        return process.start()

    def start_redis(self, host, replicaof=None, priority=PRIORITY):
        """A redis-server on ``host``'s address and port, in a new folder (never an old
        dump): a master unless ``replicaof`` (a host) is given."""
        address, port = self.redis_addr[host]
        number = next(self._starts)
        folder = self.directory / f"redis-{host}-{number}"
        folder.mkdir(parents=True)
        extra = ["--replica-priority", str(priority)]
        if replicaof:
            extra += ["--replicaof", *map(str, self.redis_addr[replicaof])]
        process = self._run(host, [redis_server_binary(), "--port", port, "--bind", address, "--save", "",
                                   "--appendonly", "no", "--dir", folder, "--protected-mode", "no",
                                   "--repl-timeout", "5", "--repl-ping-replica-period", "1", *extra],
                            f"redis-{host}-{number}")
        self.redis_procs[host] = process

        def answers():
            assert process.alive(), f"redis-server on {host} exited:\n{process.output()[-2000:]}"
            try:
                return self.redis(host, socket_timeout=1).ping()
            except (redis.RedisError, OSError):
                return False
        wait_until(answers, 20, f"redis-server on {host} ({address}:{port})", interval=0.1)
        return process

    def _start_sentinel(self, host):
        address, port = self.sentinel_addr[host]
        folder = self.directory / f"sentinel-{host}"
        folder.mkdir(parents=True)
        conf = folder / "sentinel.conf"
        master_address, master_port = self.redis_addr["A"]
        conf.write_text(
            f"port {port}\nbind {address}\nprotected-mode no\ndir {folder}\n"
            f"sentinel monitor {MASTER_NAME} {master_address} {master_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}\n"
            f"sentinel failover-timeout {MASTER_NAME} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        self._run(host, [redis_server_binary(), conf, "--sentinel"], f"sentinel-{host}")

    def start(self):
        if self.net:
            self._net_up = True
            self.net.up()
        self.start_redis("A")
        with first_sync_at_once(self.redis("A")):
            self.start_redis("B", replicaof="A")
            wait_until(lambda: self.info("B").get("master_link_status") == "up", 30, "B's replica to sync",
                       interval=0.1)
        for host in SENTINEL_HOSTS:
            self._start_sentinel(host)
        wait_until(lambda: self.healthy() == "A", 60,
                   "the replica to sync and the Sentinels to find each other and the replica", interval=0.2)
        return self

    def stop(self):
        """Every process this cluster started, then the namespaces (even after a failure)."""
        try:
            for process in self.processes:
                if process.alive():
                    process.kill()
        finally:
            if self.net and self._net_up:
                self.net.down()

    # ----------------------------------------------------------------------------------
    # Faults. Each returns what happened; each wait is bounded and raises AssertionError
    # naming what did not happen.

    def kill_master(self, failover_timeout=60):
        """kill -9 the master's redis-server; wait for the Sentinels to promote the replica.

        (host killed, time.time() before the kill, time.time() once a majority of the
        Sentinels names the new master)."""
        host = self.master()
        assert host, f"no master to kill: {self.views()}"
        process = self.redis_procs[host]
        before = time.time()
        process.kill()
        new = self.other(host)
        wait_until(lambda: self.master() == new, failover_timeout,
                   f"the Sentinels to promote {new} after {host}'s master was killed", interval=0.1)
        return host, before, time.time()

    def restart_as_replica(self, host, timeout=120):
        """Start the killed master's redis-server again (empty, as a master, as a restarted
        service would, but with replica-priority 0); the Sentinels make it a replica of the
        new master. Waits until the topology is healthy again."""
        self.start_redis(host, priority=0)
        self.rejoin(host, timeout, f"{host}'s restarted redis-server to come back as a replica, in sync")

    def partition(self, host):
        """Cut ``host`` off from the two other hosts (HOST 0 still reaches it)."""
        assert self.net, "partitions need network namespaces"
        others = [h for h in SENTINEL_HOSTS if h != host]
        self.partitioned = host
        self.net.partition(host, others)

    def wait_promoted(self, new, timeout=60):
        """Until the two Sentinels on the far side of the partition name ``new`` master."""
        far = [h for h in SENTINEL_HOSTS if h != self.partitioned]
        wait_until(lambda: self.master(sentinels=far) == new, timeout,
                   f"the Sentinels on {' and '.join(far)} to promote {new}", interval=0.1)

    def heal(self):
        """Heal the partition. The cut-off master gets replica-priority 0 first: it holds only
        what it wrote alone, and must not be promoted before it has resynced (rejoin)."""
        host = self.partitioned
        if host is None:
            return
        try:
            self.set_priority(host, 0)
        finally:
            self.net.heal(host, [h for h in SENTINEL_HOSTS if h != host])
            self.partitioned = None

    def wait_healthy(self, master, timeout=120, what="the topology to be whole again"):
        wait_until(lambda: self.healthy() == master, timeout, what, interval=0.2)


class SentinelEvents:
    """Every failover the Sentinels announce, whoever caused it: a thread subscribed to each
    Sentinel's ``+switch-master`` (and ``+sdown``/``+odown`` of a master) events, recording
    ``(time.time(), sentinel host, event, payload)``. A failover no fault explains shows here."""

    CHANNELS = ("+switch-master", "+sdown", "+odown", "+failover-end", "-failover-abort-no-good-slave")

    def __init__(self, cluster):
        self.cluster = cluster
        self.events = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._listen, args=(host,), name=f"sentinel-events-{host}",
                                          daemon=True) for host in SENTINEL_HOSTS]

    def start(self):
        for thread in self._threads:
            thread.start()
        return self

    def _listen(self, host):
        # Bounded by the stop event; a lost connection is made again (a second's pause).
        while not self._stop.is_set():
            try:
                pubsub = self.cluster.sentinel(host).pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(*self.CHANNELS)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message and message.get("type") == "message":
                        data = message["data"].decode(errors="replace")
                        if message["channel"] == b"+sdown" and not data.startswith("master "):
                            continue  # a replica or a Sentinel: not a failover
                        with self.lock:
                            self.events.append((time.time(), host, message["channel"].decode(), data))
                pubsub.close()
            except (redis.RedisError, OSError):
                self._stop.wait(1)

    def switches(self):
        """[(time.time(), master host before, master host after)], once per failover: every
        Sentinel announces it (one cut off, only once it hears of it), and failovers
        alternate (A to B, then B to A), so an announcement of the change last seen is the
        same failover."""
        found = []
        with self.lock:
            events = sorted(self.events)
        for at, _, channel, data in events:
            if channel != "+switch-master":
                continue
            parts = data.split()  # name old-ip old-port new-ip new-port
            change = (self.cluster.host_of(parts[1], parts[2]), self.cluster.host_of(parts[3], parts[4]))
            if not found or found[-1][1:] != change:
                found.append((at, *change))
        return found

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
