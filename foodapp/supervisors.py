"""This host's supervisord, through its XML-RPC interface: list, stop and start programs.

The console's Workers page stops and starts worker programs the way `supervisorctl` does,
with supervisor's own client (``supervisor.xmlrpc.SupervisorTransport``, over the unix
socket of supervisor/production.conf, or http), so an operator need not ssh to the host.

What it can reach is the supervisord of the host it runs on (``supervisor.url``): a web
process on host A controls host A's workers, never host B's. Every call has a timeout, and
every failure says what went wrong and what to do.

A stop or start is sent without supervisord's own wait (which would hold the connection for
as long as the stop takes, up to ``stopwaitsecs``); the program's state is then read until
it settles or ``wait`` seconds pass. A restart is a stop then a start, as in supervisorctl.
"""
import http.client
import logging
import socket
import time
import urllib.parse
# The XML parsed is the answer of this host's own supervisord, at the address the operator
# configured (supervisor.url), as trusted as supervisorctl, which parses the same answers:
# not untrusted input.
import xmlrpc.client  # nosec B411

from supervisor.xmlrpc import Faults, SupervisorTransport, UnixStreamHTTPConnection

log = logging.getLogger(__name__)

#: Seconds one XML-RPC call may take before supervisord counts as not answering.
TIMEOUT = 5.0
#: Seconds a stop or start is followed before the answer says it is still under way.
WAIT = 30.0
#: How often a stop or start under way is looked at.
POLL = 0.2

#: supervisord's states (supervisor.states.ProcessStates) by what they mean here.
STOPPED_STATES = frozenset({"STOPPED", "EXITED", "FATAL"})
RUNNING_STATES = frozenset({"RUNNING"})
FAILED_STATES = frozenset({"BACKOFF", "FATAL", "EXITED"})

HINT = "the console can only control this host's processes"


class SupervisorError(Exception):
    """Something supervisord said, or did not; ``status`` is the HTTP status it maps to."""

    status = 502
    error = "supervisor_error"


class Unreachable(SupervisorError):
    """supervisord did not answer (not running, wrong socket, timeout) or refused the login."""

    status = 503
    error = "supervisor_unavailable"


class NoSuchProgram(SupervisorError):
    status = 404
    error = "no_such_program"


class Failed(SupervisorError):
    """supervisord answered with a fault: the program could not be started or stopped."""

    status = 502
    error = "supervisor_refused"


class _TimedUnixConnection(UnixStreamHTTPConnection):
    """supervisor's unix-socket connection, with a timeout on connect and on every read."""

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socketfile)


class TimedTransport(SupervisorTransport):
    """SupervisorTransport, whose connections time out (supervisor's never do)."""

    def __init__(self, username=None, password=None, serverurl=None, timeout=TIMEOUT):
        super().__init__(username, password, serverurl)
        if serverurl.startswith("unix://"):
            def get_connection():
                connection = _TimedUnixConnection("localhost", timeout=timeout)
                connection.socketfile = serverurl[len("unix://"):]
                return connection
        else:
            parts = urllib.parse.urlsplit(serverurl)

            def get_connection():
                return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
        self._get_connection = get_connection


def check_url(url):
    """``url`` if supervisor's client can use it, else a SupervisorError saying what to set."""
    if not (url or "").startswith(("unix:///", "http://")):
        raise Unreachable(
            f"supervisor.url is {url!r}: set it to supervisord's unix socket (unix:///path/to/supervisor.sock, "
            "the file of its [unix_http_server]) or its http:// address ([inet_http_server])"
        )
    return url


class Supervisor:
    """One supervisord's XML-RPC interface. A new connection per call: safe from any thread."""

    def __init__(self, url, username=None, password=None, *, timeout=TIMEOUT):
        self.url = url
        self.username = username
        self.password = password
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings, **options):
        return cls(settings.supervisor_url, settings.supervisor_username, settings.supervisor_password, **options)

    def _call(self, method, *args):
        check_url(self.url)
        transport = TimedTransport(self.username, self.password, self.url, timeout=self.timeout)
        proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport)
        try:
            return getattr(proxy.supervisor, method)(*args)
        except xmlrpc.client.Fault:
            raise
        except xmlrpc.client.ProtocolError as error:
            if error.errcode == 401:
                raise Unreachable(
                    f"supervisord at {self.url} refused the console's credentials (401): set "
                    "FOODAPP_SUPERVISOR_USERNAME and FOODAPP_SUPERVISOR_PASSWORD to the username and password "
                    "of its [unix_http_server]"
                ) from None
            raise Unreachable(f"supervisord at {self.url} answered {error.errcode} {error.errmsg}: is it supervisord? "
                              f"check supervisor.url; {HINT}") from None
        except (OSError, http.client.HTTPException, xmlrpc.client.ResponseError) as error:
            reason = "no answer within %g s" % self.timeout if isinstance(error, TimeoutError) else str(error) or \
                type(error).__name__
            raise Unreachable(f"supervisord at {self.url} did not answer ({reason}): is it running? {HINT}") from None
        finally:
            transport.close()

    def processes(self):
        """Every program supervisord runs, as supervisorctl names it ("workers:workers_00")."""
        return [program(info) for info in self._call("getAllProcessInfo")]

    def info(self, name):
        try:
            return program(self._call("getProcessInfo", name))
        except xmlrpc.client.Fault as fault:
            raise self._fault(fault, name) from None

    def stop(self, name, wait=WAIT):
        """Stop ``name`` (its jobs are finished or handed back first); its state once settled,
        or as it is after ``wait`` seconds. Stopping a stopped program changes nothing."""
        try:
            self._call("stopProcess", name, False)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != Faults.NOT_RUNNING:
                raise self._fault(fault, name) from None
        return self._settle(name, STOPPED_STATES, wait)

    def start(self, name, wait=WAIT):
        """Start ``name``; its state once RUNNING (after its startsecs) or failed, or as it is
        after ``wait`` seconds. Starting a running program changes nothing."""
        try:
            self._call("startProcess", name, False)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode != Faults.ALREADY_STARTED:
                raise self._fault(fault, name) from None
        return self._settle(name, RUNNING_STATES | FAILED_STATES - {"EXITED"}, wait)

    def restart(self, name, wait=WAIT):
        """Stop, then start (as `supervisorctl restart`). If the stop is still under way after
        ``wait`` seconds, the program is left stopping and its state says so."""
        stopped = self.stop(name, wait)
        if stopped["state"] not in STOPPED_STATES:
            return stopped
        return self.start(name, wait)

    def _settle(self, name, states, wait):
        deadline = time.monotonic() + wait
        while True:
            current = self.info(name)
            if current["state"] in states or time.monotonic() >= deadline:
                return current
            time.sleep(POLL)

    def _fault(self, fault, name):
        if fault.faultCode == Faults.BAD_NAME:
            return NoSuchProgram(f"supervisord at {self.url} has no program {name!r}: see the list of programs")
        if fault.faultCode == Faults.SHUTDOWN_STATE:
            return Unreachable(f"supervisord at {self.url} is shutting down: it starts and stops nothing now")
        return Failed(f"supervisord at {self.url} could not do it for {name}: {fault.faultString}; "
                      "see the program's log (var/log/) and supervisord's")


def program(info):
    """A process as getAllProcessInfo/getProcessInfo gives it, named as supervisorctl does."""
    group, name = info["group"], info["name"]
    started, now = info.get("start") or 0, info.get("now") or 0
    return {
        "name": name if group == name else f"{group}:{name}",
        "group": group,
        "state": info["statename"],
        "pid": info.get("pid") or None,
        "description": info.get("description", ""),
        "uptime_seconds": now - started if info["statename"] == "RUNNING" and started else None,
        "exit_status": info.get("exitstatus"),
        "spawn_error": info.get("spawnerr") or None,
    }
