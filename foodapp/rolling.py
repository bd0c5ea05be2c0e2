"""`foodapp-rolling-restart`: restart a host's web processes one at a time, dropping nothing.

For each web process: HAProxy drains it (no new requests), we wait until it has no request
in flight, supervisord restarts it, we wait until its /readyz answers 200, and HAProxy
sends it traffic again. Every wait polls a condition with a deadline.

    foodapp-rolling-restart --haproxy /run/haproxy/admin.sock --backend waitress \\
        --server hostA_0=web:web_0=http://hostA:8080 --server hostA_1=web:web_1=http://hostA:8081 \\
        -c supervisor/production.conf
"""
import argparse
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


class RollingRestartError(RuntimeError):
    pass


class HAProxy:
    """HAProxy's runtime API, over its admin socket (a path, or host:port)."""

    def __init__(self, address):
        self.address = address

    def command(self, line):
        if ":" in self.address and not self.address.startswith("/"):
            host, port = self.address.rsplit(":", 1)
            sock = socket.create_connection((host, int(port)), timeout=5)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(self.address)
        with sock:
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_stat(self, backend, server):
        """The `show stat` row of one server, as a dict."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == backend and row.get("svname") == server:
                return row
        raise RollingRestartError(f"HAProxy has no server {backend}/{server}")


def wait(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RollingRestartError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.1)


def ready(url):
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def restart_one(haproxy, backend, server, program, url, supervisorctl, log):
    log(f"{server}: draining")
    haproxy.command(f"set server {backend}/{server} state drain")
    wait(lambda: haproxy.server_stat(backend, server)["scur"] == "0", 120, f"{server} to finish its requests")
    log(f"{server}: no request in flight; restarting {program}")
    result = subprocess.run([*supervisorctl, "restart", program], capture_output=True, text=True, timeout=180)
    if "started" not in result.stdout:
        raise RollingRestartError(f"supervisorctl restart {program} failed: {result.stdout}{result.stderr}")
    wait(lambda: ready(url), 120, f"{url}/readyz to answer 200")
    haproxy.command(f"set server {backend}/{server} state ready")
    wait(lambda: haproxy.server_stat(backend, server)["status"].startswith("UP"), 60, f"HAProxy to see {server} up")
    log(f"{server}: back in service")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--haproxy", required=True, help="HAProxy's admin socket: a path, or host:port")
    parser.add_argument("--backend", default="waitress")
    parser.add_argument("--server", action="append", required=True, metavar="NAME=PROGRAM=URL",
                        help="an HAProxy server, its supervisord program and its own URL; one per web process")
    parser.add_argument("-c", "--supervisor-conf", default="supervisor/production.conf")
    args = parser.parse_args(argv)

    supervisorctl = [str(Path(sys.executable).parent / "supervisorctl"), "-c", args.supervisor_conf]
    haproxy = HAProxy(args.haproxy)
    try:
        for spec in args.server:
            server, program, url = spec.split("=", 2)
            restart_one(haproxy, args.backend, server, program, url, supervisorctl,
                        lambda line: print(f"rolling restart: {line}", flush=True))
    except (RollingRestartError, OSError) as error:
        print(f"rolling restart stopped: {error}. The servers already done are in service; "
              f"fix the cause and run it again.", file=sys.stderr)
        return 1
    return 0
