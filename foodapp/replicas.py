"""How many replicas an enqueue waits for (``WAIT``), given what the Sentinels say.

``enqueue.replicas`` is what we want. With Sentinels there is one case where fewer is
safe: after a failover the promoted master may have no replica yet (the old master is
gone). If a majority of the Sentinels is reachable from here and agrees that the master we
write to is *the* master and up (none of them judging it down: a Sentinel that does is
about to vote for a promotion), writes to it will not be thrown away, so an enqueue waits only
for the replicas it has online. When we cannot confirm that (a partition cut us off with an
old master), the enqueue waits for all ``enqueue.replicas``: with no replica reachable it
times out and answers 503, so no job is acknowledged that a failover could discard.

A write that must wait for more replicas than the master has online is not sent at all
(``for_write``: TooFewReplicas, a refusal): its ``WAIT`` could only time out, after storing
a job that the answer would have to call unknown. So, right after a failover, before most
Sentinels name the new master (which has no replica yet), an order is refused at once and
tried again, instead of waiting out the replica timeout; and a master cut off from its
replica takes nothing. What the master has online is read from it (``INFO replication``)
with the Sentinels' view, and read again before a write is refused.

The master a failover replaced is not counted among the replicas the Sentinels see up
(they list it so for another down-after) until the new master lists it: it can come back
only by resyncing (``_replicas_up``).
"""
import json
import logging
import threading
import time

import redis

from foodapp.durable import TooFewReplicas

#: Failovers seen by any web process: config epoch -> {"at", "master", "previous"}.
FAILOVERS = "foodapp:failovers"

log = logging.getLogger(__name__)


class ReplicaPolicy:

    def __init__(self, settings, client, interval=0.5):
        self.settings = settings
        self.client = client
        self.interval = interval
        self._required = settings.enqueue_replicas
        self._thread = None
        self._lock = threading.Lock()
        self._seen = None  # (config epoch, master address) last seen by the Sentinels
        self._master = None  # (host, port) of the master a majority of the Sentinels last agreed on
        self._replaced = None  # (host, port) of the master that one replaced, if known
        self._online = None  # replicas the master says are online (INFO); None: it did not say
        self._online_at = float("-inf")  # when that was asked
        self._reading = threading.Lock()
        self._asking = threading.Lock()
        self._asked = float("-inf")  # when the last asking of the Sentinels ended

    def required(self):
        """The number of replica acknowledgements an enqueue must get now."""
        if not self.settings.redis_sentinels:
            return self.settings.enqueue_replicas
        self._watching()
        return self._required

    def for_write(self):
        """``required()``, once the master has that many replicas online; else TooFewReplicas,
        and the write is not sent. What the master has online is read every ``interval`` by
        the thread that asks the Sentinels (never on a write's path: a dead Sentinel host
        makes an asking slow), and read again before a write is refused, should a replica
        have come back since."""
        required = self.required()
        if not required:
            return 0
        self._watching()
        if self._online is None or self._online >= required:
            return required  # not read yet, or the master did not say: the WAIT decides
        self._read_online(fresh=0.1)
        required = self.required()
        if required and self._online is not None and self._online < required:
            raise TooFewReplicas(
                f"the master has {self._online} replica(s) online and a job must reach {required} "
                f"(enqueue.replicas = {self.settings.enqueue_replicas}; fewer only when a majority of the "
                "Sentinels agree on the master): nothing was sent")
        return required

    def refresh(self, fresh=0.1):
        """Read what replicas the master has online, and ask the Sentinels, now, not at the
        next poll: an enqueue is being retried, and a failover may have just left the new
        master without its replica. Threads asking together share: a reading of the master
        at most ``fresh`` seconds old is taken as it is, and an asking of the Sentinels under
        way when a thread asks answers that thread too (an asking takes a second when a
        Sentinel's host is gone; one each would line the threads up behind one another)."""
        if self.settings.redis_sentinels:
            asked = time.monotonic()
            with self._asking:
                if self._asked < asked:
                    self._update()
                    self._asked = time.monotonic()
        self._read_online(fresh)

    def _read_online(self, fresh=0.0):
        """Read how many replicas the master has online, unless a reading is ``fresh`` or
        another thread's is under way: a master on a host gone silently holds a reading for
        the socket timeout, and the threads that wait for it would hold their orders as long
        after a failover (the others go on with what was last read; a new master makes that
        unknown, _follow). A reading that a failover overtook is dropped."""
        if not self._reading.acquire(blocking=False):
            return
        try:
            began, master = time.monotonic(), self._master
            if began - self._online_at <= fresh:
                return
            try:
                info = self.client.info("replication")
            except redis.RedisError as error:
                log.debug("replica policy: %s", error)
                info = {}
            online = None
            if info.get("role") == "master":
                online = sum(1 for replica in replicas_in(info) if replica.get("state") == "online")
            if self._master == master:
                self._online, self._online_at = online, began
        finally:
            self._reading.release()

    def _watching(self):
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="foodapp-replicas", daemon=True)
                self._thread.start()

    def _watch(self):
        stop = threading.Event()
        while True:
            self.refresh(fresh=0)
            stop.wait(self.interval)

    def _update(self):
        required = self.settings.enqueue_replicas
        try:
            required = self.check()
        except redis.RedisError as error:
            log.debug("replica policy: %s", error)
        if required != self._required:
            log.warning("writes now wait for %d replica(s) (configured: %d)",
                        required, self.settings.enqueue_replicas)
        self._required = required

    def check(self):
        """How many replicas a write must wait for now, from what the Sentinels see.

        A Sentinel agrees with us only if it names our master, does not judge it down
        (``s_down``: it is about to vote for a promotion; or ``o_down``) and answered both
        questions. Fewer than ``enqueue.replicas`` only with a majority agreeing.
        """
        settings = self.settings
        master = tuple(self.client.connection_pool.get_master_address())
        views = [view for view in (self._view(host, port, master) for host, port in settings.redis_sentinels)
                 if view is not None]
        if len(views) <= len(settings.redis_sentinels) // 2:
            return settings.enqueue_replicas
        self._follow(master)
        self._record_failover(max(epoch for epoch, _ in views), f"{master[0]}:{master[1]}")
        return min(settings.enqueue_replicas, self._replicas_up(views))

    def _view(self, host, port, master):
        """(config epoch, addresses of the replicas up) of a Sentinel that agrees ``master``
        is the master and up, or None (it names another, judges it down, or did not answer)."""
        settings = self.settings
        sentinel = redis.Redis(host=host, port=port, password=settings.redis_sentinel_password,
                               socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            state = sentinel.sentinel_master(settings.redis_master_name)
            if ((state["ip"], int(state["port"])) != master
                    or state.get("is_sdown") or state.get("is_odown") or state.get("is_disconnected")):
                return None
            replicas = sentinel.sentinel_slaves(settings.redis_master_name)
        except redis.RedisError:
            return None
        finally:
            sentinel.close()
        up = [(r["ip"], int(r["port"])) for r in replicas
              if not (r.get("is_sdown") or r.get("is_odown") or r.get("is_disconnected"))]
        return int(state.get("config-epoch", 0)), up

    def _replicas_up(self, views):
        """The most replicas any agreeing Sentinel sees up (conservative), not counting the
        master this one replaced unless this one lists it. After a failover the Sentinels
        list the old master as its successor's replica, and as up until down-after passes
        once more (they only now start to ping it there); it can come back only by resyncing,
        which the master lists at once (``INFO replication``, whatever its state), so until
        then no write can wait for it: counting it would refuse every order for down-after
        after the promotion (with a host gone, past ``enqueue.retry_seconds``)."""
        replaced = self._replaced
        if replaced is not None and any(replaced in up for _, up in views):
            listed = {(r.get("ip"), int(r.get("port", 0))) for r in replicas_in(self.client.info("replication"))}
            if replaced not in listed:
                views = [(epoch, [address for address in up if address != replaced]) for epoch, up in views]
        return max(len(up) for _, up in views)

    def _follow(self, master):
        """Remember the master a majority of the Sentinels agree on, and the one it replaced
        (for a process started since the failover, as another process wrote it down)."""
        if self._master is None:
            self._master = master
            last = last_failover(self.client)
            if last is not None and last["master"] == f"{master[0]}:{master[1]}":
                self._replaced = _address(last["previous"])
        elif master != self._master:
            self._replaced, self._master = self._master, master
            self._online, self._online_at = None, float("-inf")  # read from the old master

    def _record_failover(self, epoch, master):
        """Write down a failover the first time any process sees its new epoch."""
        if self._seen is not None and epoch > self._seen[0]:
            entry = {"at": f"{time.time():.3f}", "master": master, "previous": self._seen[1], "epoch": epoch}
            if self.client.hsetnx(FAILOVERS, epoch, json.dumps(entry)):
                log.warning("failover: the master is now %s (was %s)", master, self._seen[1])
        self._seen = (epoch, master)


def _address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


def replicas_in(info):
    """A master's replicas, as its ``INFO replication`` lists them (slave0, slave1, ...)."""
    return [value for name, value in info.items() if name.startswith("slave") and isinstance(value, dict)]


def last_failover(client):
    """The most recent failover any web process saw, or None."""
    entries = [json.loads(value) for value in client.hvals(FAILOVERS)]
    return max(entries, key=lambda entry: entry["epoch"], default=None)
