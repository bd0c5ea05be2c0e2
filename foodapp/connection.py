"""A Redis connection of a writer's own: a script call, and ``WAIT`` behind it, without the pool.

redis-py's pool checks a connection out and back in for every command: a lock, a fork
check each way (a ``getpid`` system call), and a read that must find nothing waiting on the
connection (two more system calls, to make the socket non-blocking and back), then the
client's per-command wrapping. A connection that one thread uses at a time needs none of
that: the group commit's writer (foodapp/commits.py) and each web thread's orders
(foodapp/broker.py) have one of their own.

Before a call, a kept connection is polled (one system call, no wait): anything to read
there means the server closed it (restarted, killed the client, timed it out), and a new
one is made, so the call's outcome stays clear: an error on a fresh connection's connect
is a refusal (nothing ran), an error after the call was sent leaves the outcome unknown,
and the caller (foodapp.broker._refused) is told which, never a resend's error in place of
the first. A failed exchange drops the connection (a connection cut mid-reply, a master
that became a replica and answers READONLY), and the next call makes a new one, to
whatever the pool names the master then (a Sentinel pool asks the Sentinels). A connection
also follows the master the pool names before every call: with Sentinels,
foodapp/replicas.py decides how many replicas a write waits for from that master, so a
write must never go to another (an old master cut off from the Sentinels still takes
writes). A forked child makes its own connections: its parent's are not.

Its socket blocks, with the kernel's own timeouts (``SO_RCVTIMEO``, ``SO_SNDTIMEO``) set to
``redis.socket_timeout``, where redis-py gives Python's: a socket with a Python timeout polls
before every send and every read, and each of those system calls lets go of the GIL, which
another thread takes, so the caller then waits for it back; a web process under load made
about one such hand-over more per order for each (docs/bench.md, "The web"). For the same
reason the check for a connection the server closed reads the TCP state (``TCP_INFO``, a
call that keeps the GIL) rather than polling, where the connection is TCP.
"""
import os
import select
import socket
import struct
import threading

import redis

#: How many times this process's line has forked: a connection made before the last fork
#: is the parent's.
_forks = 0


def _forked():
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class OwnConnection:
    """One writer's connection to the master of ``client``'s pool; one thread at a time."""

    def __init__(self, client):
        self.client = client
        self._connection = None
        self._made_in = None

    def send(self, sha, keys, args, replicas=0, timeout_ms=0):
        """Send ``EVALSHA sha`` (and ``WAIT replicas timeout_ms`` behind it: WAIT counts the
        writes of its own connection) without waiting for the replies (``replies`` reads them)."""
        pool = self.client.connection_pool
        if self._connection is None or self._made_in != _forks:
            self._connection = pool.make_connection()
            self._made_in = _forks
        elif self._closed_by_server():
            self._connection.disconnect()
        master = getattr(pool, "master_address", None)
        if master is not None and (self._connection.host, self._connection.port) != tuple(master):
            # The Sentinels name another master now (the replica policy's check asked them,
            # and decided how many replicas a write waits for from that master): go there, as
            # the pool's own idle connections do, never on writing to the old one.
            self._connection.disconnect()
        if self._connection._sock is None:
            self._connection.connect()  # an error here is a refusal: nothing was sent
            _kernel_timeouts(self._connection._sock, self._connection.socket_timeout)
        commands = [("EVALSHA", sha, len(keys), *keys, *args)]
        if replicas:
            commands.append(("WAIT", replicas, timeout_ms))
        try:
            self._connection.send_packed_command(self._connection.pack_commands(commands))
        except redis.ConnectionError as error:
            self._connection.disconnect()
            self._raise_if_timed_out(error, "writing to")
            raise
        except BaseException:
            self._connection.disconnect()
            raise

    def replies(self, replicas=0):
        """Every reply of the call sent, errors too (as values), so the next call starts clean."""
        replies = []
        try:
            for _ in range(2 if replicas else 1):
                try:
                    replies.append(self._connection.read_response())
                except redis.ResponseError as error:
                    replies.append(error)
        except redis.ConnectionError as error:
            self._connection.disconnect()
            self._raise_if_timed_out(error, "reading from")
            raise
        except BaseException:
            self._connection.disconnect()
            raise
        if any(isinstance(reply, redis.ReadOnlyError) for reply in replies):
            self._connection.disconnect()  # a demoted master: the next call asks for the new one
        return replies

    def call(self, script, keys, args, replicas=0, timeout_ms=0):
        """Run a registered ``script`` (loading it first where the server has none, as on a
        promoted replica) and, with ``replicas``, WAIT for them: (its reply, how many replicas
        acknowledged; 0 without WAIT). An error reply is raised."""
        replies = self._exchange(script.sha, keys, args, replicas, timeout_ms)
        if isinstance(replies[0], redis.exceptions.NoScriptError):
            script.sha = self.client.script_load(script.script)
            replies = self._exchange(script.sha, keys, args, replicas, timeout_ms)
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise reply
        return replies[0], replies[1] if replicas else 0

    def _exchange(self, sha, keys, args, replicas, timeout_ms):
        self.send(sha, keys, args, replicas, timeout_ms)
        return self.replies(replicas)

    def _raise_if_timed_out(self, error, doing):
        """Raise a TimeoutError that names the setting when the kernel's timeout ended the read
        or write that raised ``error`` (redis-py tells its BlockingIOError as a ConnectionError)."""
        if isinstance(error.__context__, BlockingIOError):
            raise redis.TimeoutError(f"Timeout {doing} socket (no answer within redis.socket_timeout, "
                                     f"{self._connection.socket_timeout:g} s)") from error

    def _closed_by_server(self):
        """Whether the kept connection is no longer open both ways before anything was sent:
        the server closed it (or reset it). A TCP connection is asked for its state; another
        (a Unix socket) whether it has something to read: the server's end of it, or an error."""
        sock = self._connection._sock
        if sock is None:
            return False
        if _TCP_INFO is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            return sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 1)[0] != _TCP_ESTABLISHED
        poll = select.poll()
        poll.register(sock, select.POLLIN)
        return bool(poll.poll(0))


#: Linux's TCP_INFO (its first byte is the connection's state) and the state of an open one.
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_TCP_ESTABLISHED = 1


def _kernel_timeouts(sock, seconds):
    """Make ``sock`` block, with the kernel's timeouts of ``seconds`` on each read and write
    in place of Python's (see above); no timeout (None) leaves it as it is."""
    if not seconds:
        return
    value = struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)
    sock.settimeout(None)


class ThreadConnections(threading.local):
    """An OwnConnection for each thread that asks for one (``.own``)."""

    def __init__(self, client):
        self.own = OwnConnection(client)
