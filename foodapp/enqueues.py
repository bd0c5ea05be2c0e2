"""Group commit for orders: concurrent requests' enqueues in one Redis call and one WAIT.

Every request that stores jobs (an order, a menu, a report; a worker storing a retry) calls
``EnqueueGroups.store``. When no call is under way, its store is sent at once, alone: a
quiet server adds no wait to an order. While a call is under way, the next stores wait,
and the first of them sends them all in the next call: one round trip, one script call
(lua/enqueues.lua: each store is enqueue.lua's work, unchanged, in the order the requests
arrived) and, in production, one ``WAIT`` for all of them. Measured: a web process spends
about half the CPU per order on its Redis call (redis-py's connection handling and the
socket calls), so under concurrent load each order costs less.

Each store keeps its own outcome: its reply (stored, an idempotent replay, a conflict), or
the error of the call (Redis down, a failover), which its request handles as before
(foodapp/broker.py tries again or answers 503); a store is answered only once Redis has
answered its call, and, with ``replicas``, only counts as stored once that many replicas
acknowledged the call (else NotReplicated, with its reply).
"""
import json
import threading

from foodapp import jobs
from foodapp.durable import NotReplicated, run_and_wait


def script():
    """lua/enqueues.lua, with enqueue.lua before it as its function ``enqueue``."""
    return f"local function enqueue(KEYS, ARGV)\n{jobs.lua('enqueue')}\nend\n{jobs.lua('enqueues')}"


class _Store:
    __slots__ = ("keys", "args", "replicas", "timeout_ms", "reply", "error", "done", "wake")

    def __init__(self, keys, args, replicas, timeout_ms):
        self.keys, self.args, self.replicas, self.timeout_ms = keys, args, replicas, timeout_ms
        self.reply = self.error = None
        self.done = False
        self.wake = None  # held while its thread waits: released once stored, or to lead


class EnqueueGroups:
    """``single``: enqueue.lua (a store sent alone); ``grouped``: enqueues.lua. A call takes
    at most ``most`` stores and, past the first, ``most_args`` arguments (a few menus):
    Redis runs a call whole, and nothing else meanwhile."""

    def __init__(self, client, single, grouped, most=32, most_args=2000):
        self.client, self.single, self.grouped = client, single, grouped
        self.most, self.most_args = most, most_args
        self._mutex = threading.Lock()
        self._waiting = []
        self._busy = False  # a thread is sending (it leads until it hands over)
        self.calls = self.stores = 0  # how well stores group: stores / calls

    def store(self, keys, args, replicas=0, timeout_ms=0):
        """enqueue.lua's reply for ``keys`` and ``args``, once Redis stored them (grouped with
        other threads' stores); NotReplicated when fewer than ``replicas`` acknowledged."""
        mine = _Store(keys, args, replicas, timeout_ms)
        with self._mutex:
            lead = not self._busy
            if lead:
                self._busy = True
            else:
                mine.wake = threading.Lock()
                mine.wake.acquire()
                self._waiting.append(mine)
        if not lead:
            mine.wake.acquire()  # stored in another thread's call, or handed the lead
        if not mine.done:
            self._lead(mine)
        if mine.error is not None:
            raise mine.error
        return mine.reply

    def _lead(self, mine):
        """Send ``mine`` with the stores waiting now; then hand the lead to the next store
        that waits (it sends its group from its own thread) or leave the sending free."""
        heir, group = None, [mine]
        try:
            with self._mutex:
                taken = len(mine.args)
                while self._waiting and len(group) < self.most and taken + len(self._waiting[0].args) <= self.most_args:
                    store = self._waiting.pop(0)
                    group.append(store)
                    taken += len(store.args)
            self._send(group)
        except BaseException as error:  # _send hands Redis errors to the stores: this is anything else
            for store in group:
                if store.reply is None and store.error is None:
                    store.error = error
            raise
        finally:
            with self._mutex:
                if self._waiting:
                    heir = self._waiting.pop(0)
                else:
                    self._busy = False
            for store in group:
                store.done = True
                if store is not mine:
                    store.wake.release()
            if heir is not None:
                heir.wake.release()  # not done: it leads

    def _send(self, group):
        self.calls += 1
        self.stores += len(group)
        replicas = max(store.replicas for store in group)
        timeout_ms = max(store.timeout_ms for store in group)
        try:
            if len(group) == 1:
                reply, acknowledged = run_and_wait(self.client, self.single, group[0].keys, group[0].args,
                                                   replicas, timeout_ms)
                replies = [reply]
            else:
                keys, args, sizes = [], [], []
                for store in group:
                    keys += store.keys
                    args += store.args
                    sizes.append((len(store.keys), len(store.args)))
                replies, acknowledged = run_and_wait(self.client, self.grouped, keys, [json.dumps(sizes), *args],
                                                     replicas, timeout_ms)
        except Exception as error:
            # Every error goes to the stores' own threads, never up through the leader alone.
            for store in group:
                store.error = error
            return
        for store, reply in zip(group, replies):
            store.reply = reply
            if acknowledged < store.replicas:
                store.error = NotReplicated(
                    f"{acknowledged} of {store.replicas} replica(s) acknowledged the job within {timeout_ms} ms",
                    reply=reply)
