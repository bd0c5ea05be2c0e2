"""The web server: waitress, sending each answer's head and body with one send().

Waitress writes a response's status line and headers with one send() and its body with
another: two TCP segments. A web process that dies between the two (its host lost) leaves
the front proxy a head whose body never comes; the proxy has already passed the head on,
so it can no longer retry the request on another process, and the client reads a cut
answer. With both in one send(), the proxy gets all of an answer or none of it, and retries
an order it got none of (HAProxy's retry-on empty-response, with the retry key that makes
the retry meet the first try's job). One send() is one system call less an answer, too.

Everything else is waitress as it is: the ini's [server:main] says ``use = egg:foodapp#main``
and takes waitress's settings (listen, threads, trusted_proxy, ...) unchanged.
"""
import logging

from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer, create_server
from waitress.task import WSGITask


class _Gather:
    """Stands in for a task's channel during its first write: keeps what is written."""

    def __init__(self, channel):
        self.channel = channel
        self.pieces = []

    def write_soon(self, data):
        self.pieces.append(data)
        return len(data)

    def __getattr__(self, name):  # the head names the server (ident) through its channel
        return getattr(self.channel, name)


class OneSendTask(WSGITask):
    """A WSGI task whose first write sends the head and the first body chunk together."""

    def write(self, data):
        if self.wrote_header:
            return super().write(data)
        channel = self.channel
        gather = self.channel = _Gather(channel)
        try:
            super().write(data)
        finally:
            self.channel = channel
        channel.write_soon(b"".join(gather.pieces))


class OneSendChannel(HTTPChannel):
    task_class = OneSendTask


def serve(app, global_conf=None, **settings):
    """PasteDeploy's server runner: waitress with :class:`OneSendChannel` on every socket."""
    sockets = {}
    server = create_server(app, map=sockets, **settings)
    for each in sockets.values():
        if isinstance(each, BaseWSGIServer):
            each.channel_class = OneSendChannel
    logging.basicConfig()  # as waitress.serve: a no-op once pserve has set up the ini's logging
    server.print_listen("Serving on http://{}:{}")
    server.run()
    return 0
