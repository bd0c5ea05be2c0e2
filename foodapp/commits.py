"""Group commit: the starts and dones of many jobs in one Redis call.

A worker's threads start and finish jobs at the same moments; each used to pay a round
trip of its own for every start and every done (and its own ``WAIT`` in production). Here
the first thread with something to write becomes the writer: it sends everything waiting
in one script call (lua/commit.lua, each write start.lua's or finish.lua's work unchanged)
with one ``WAIT``, and goes on writing while more arrives. The other threads wait for
their write when they need its answer (a start: the job runs only once it is stored) or
go on (a done: the message stays held, in the worker's ack set and in Holdings, until its
write has been answered; then ``then(error)`` runs).

A start is sent at once when no call is under way: grouping adds no wait to a job. A done
waits for the next start to ride with (its thread's next job, usually), ``linger`` (2 ms)
at most; a worker that stops writes what waits before it says it stopped (``flush``).
"""
import logging
import threading
import time

import redis

from foodapp.connection import OwnConnection
from foodapp.durable import NotReplicated

log = logging.getLogger(__name__)

class _Write:
    __slots__ = ("kind", "keys", "args", "shared", "replicas", "timeout_ms", "then", "reply", "error", "written",
                 "wake")

    def __init__(self, kind, keys, args, replicas, timeout_ms, then, shared):
        self.kind, self.keys, self.args, self.then, self.shared = kind, keys, args, then, shared
        self.replicas, self.timeout_ms = replicas, timeout_ms
        self.reply = self.error = None
        self.written = False
        self.wake = None  # a lock held until its thread may go on (a write it waits for)


class GroupCommit:

    def __init__(self, client, script, most=128, linger=0.002):
        self.client = client
        self.script = script
        self.most = most  # writes in one call at most
        self.linger = linger  # how long a done waits for a start to ride with (s)
        self._mutex = threading.Lock()
        self._waiting = []
        self._writing = False
        self._kick = threading.Event()  # dones wait and nobody writes: the flusher's turn
        self._flusher = None
        self.calls = self.writes = 0  # how well writes group: writes / calls
        self._own = OwnConnection(client)  # the writer's (see _transmit)
        self._sent = None  # a group sent for the heir, whose replies it reads

    def write(self, kind, keys, args, replicas=0, timeout_ms=0, then=None, shared=None):
        """Write a ``kind`` of commit.lua: "start" or "finish" with its ``keys`` and ``args``,
        or "s" or "f" (a start or a done of the hot path, jobs.Started and jobs.Done) with its
        own ``args`` and the part it ``shared`` with others (sent once in a call).

        Without ``then``: wait, and return its reply once stored (and, with ``replicas``, on
        that many replicas within ``timeout_ms``: else NotReplicated, with the reply), or
        raise the Redis error. With ``then``: return at once; the write goes with the next
        one that waits (the same thread's next start, usually), or after ``linger`` on its
        own; ``then(error or None)`` runs once Redis has answered (``replicas`` is then not
        waited for).
        """
        write = _Write(kind, keys, args, replicas, timeout_ms, then, shared)
        if then is not None:
            with self._mutex:
                self._waiting.append(write)
                idle = not self._writing
            if idle:
                self._kick_flusher()
            return None
        write.wake = threading.Lock()
        write.wake.acquire()
        with self._mutex:
            self._waiting.append(write)
            lead = not self._writing
            self._writing = True
        if not lead:
            write.wake.acquire()  # written by another thread, or handed the writing
        if not write.written:
            self._write_until(write)
        if write.error is not None:
            raise write.error
        return write.reply

    def flush(self):
        """Write everything waiting now (a worker that stops: before it says so)."""
        while True:
            with self._mutex:
                if not self._waiting:
                    return
                lead = not self._writing
                self._writing = True
            if lead:
                self._write_until(None)  # one group: more may wait (over ``most``)
            else:
                time.sleep(self.linger)  # a writer is at work: let it finish

    def _kick_flusher(self):
        if self._flusher is None:
            with self._mutex:
                if self._flusher is None:
                    self._flusher = threading.Thread(target=self._flush_forever, name="foodapp-commits", daemon=True)
                    self._flusher.start()
        self._kick.set()

    def _flush_forever(self):
        """Write the dones no thread took along, once they waited ``linger`` for one."""
        while True:
            self._kick.wait()
            self._kick.clear()
            time.sleep(self.linger)  # the time a done waits for a start to ride with
            with self._mutex:
                lead = bool(self._waiting) and not self._writing
                if lead:
                    self._writing = True
            if lead:
                self._write_until(None)

    def _write_until(self, mine):
        """Write groups until ``mine`` is written (None: one group of what waits now); then
        hand the writing to a thread waiting for its write, or leave the dones waiting to
        the flusher.

        The heir's group is sent before the heir is woken, and the heir reads its replies:
        Redis runs the call while the heir wakes up, instead of after (a thread's wake-up
        took a fifth of a group's turn on the machines measured, docs/bench.md)."""
        heir, dones_left, wrote = None, False, False
        while True:
            sent, self._sent = self._sent, None
            if sent is None:
                with self._mutex:
                    if mine.written if mine is not None else wrote or not self._waiting:
                        heir = next((w for w in self._waiting if w.wake is not None), None)
                        if heir is None:  # else it writes next: self._writing stays True
                            self._writing = False
                            dones_left = bool(self._waiting)
                        else:
                            group = self._take()
                        break
                    group = self._take()
                sent = self._send(group)
            self._receive(sent)
            wrote = True
            for write in sent.group:
                write.written = True
                if write.wake is not None:
                    if write is not mine:
                        write.wake.release()
                elif write.then is not None:
                    try:
                        write.then(write.error)
                    except Exception:
                        log.exception("after writing a job's done")
        if heir is not None:
            self._sent = self._send(group)  # its replies are the heir's to read
            heir.wake.release()
        elif dones_left:
            self._kick_flusher()

    def _take(self):
        """The next group: the first ``most`` writes waiting (with the mutex held)."""
        group, self._waiting = self._waiting[:self.most], self._waiting[self.most:]
        return group

    def _send(self, group):
        """Send a group's call (and its ``WAIT``); a _Sent, with the error if it failed."""
        self.calls += 1
        self.writes += len(group)
        # Flat arguments: hiredis packs them in C, where a JSON argument cost json here and
        # cjson in Redis (a decode was a sixth of the call's work in Redis, numbers in it
        # made each command that took one convert it back to a string). First the parts the
        # writes share, each once, then each write: its kind, and either the number of the
        # shared part it goes with, or how many keys and arguments it has.
        keys, args, shared = [], [], {}
        replicas = timeout_ms = 0
        for write in group:
            if write.shared is not None:
                number = shared.get(write.shared)
                if number is None:
                    number = shared[write.shared] = len(shared) + 1
                args += (write.kind, number)
            else:
                keys += write.keys
                args += (write.kind, len(write.keys), len(write.args))
            args += write.args
            if write.replicas > replicas:
                replicas = write.replicas
            if write.timeout_ms > timeout_ms:
                timeout_ms = write.timeout_ms
        parts = [len(shared)]
        for part in shared:
            parts += part
        sent = _Sent(group, keys, parts + args, replicas, timeout_ms)
        try:
            self._transmit(sent)
        except Exception as error:
            sent.error = error
        return sent

    def _transmit(self, sent):
        """The commit script's call (and ``WAIT`` behind it), sent without waiting for the
        replies (_receive reads them), on a connection of the writer's own: one thread
        writes at a time (foodapp/connection.py)."""
        self._own.send(self.script.sha, sent.keys, sent.args, sent.replicas, sent.timeout_ms)

    def _receive(self, sent):
        """Read a sent group's replies into its writes (each write's reply, or its error)."""
        try:
            if sent.error is not None:
                raise sent.error
            replies = self._own.replies(sent.replicas)
            if isinstance(replies[0], redis.exceptions.NoScriptError):
                # A new or restarted server (a promoted replica, say) has no scripts yet.
                self.script.sha = self.client.script_load(self.script.script)
                self._transmit(sent)
                replies = self._own.replies(sent.replicas)
            for reply in replies:
                if isinstance(reply, redis.ResponseError):
                    raise reply
        except Exception as error:
            # Every error goes to the writes' threads, never up through the writer: a
            # writer that raised would leave the writing taken and every later write waiting.
            for write in sent.group:
                write.error = error
            return
        acknowledged = replies[1] if sent.replicas else 0
        for write, reply in zip(sent.group, replies[0]):
            write.reply = reply
            if write.then is None and acknowledged < write.replicas:
                write.error = NotReplicated(
                    f"{acknowledged} of {write.replicas} replica(s) acknowledged the {write.kind} of the job "
                    f"within {sent.timeout_ms} ms", reply=reply)

class _Sent:
    """A group's call on its way: what _receive needs to read and hand out its replies."""
    __slots__ = ("group", "keys", "args", "replicas", "timeout_ms", "error")

    def __init__(self, group, keys, args, replicas, timeout_ms):
        self.group, self.keys, self.args = group, keys, args
        self.replicas, self.timeout_ms = replicas, timeout_ms
        self.error = None
