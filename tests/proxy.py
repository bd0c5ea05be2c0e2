"""HOST 0 for the tests: HAProxy run with deploy/haproxy/haproxy.cfg, pointed at test backends.

The config runs as shipped, on 127.0.0.1 and free ports, with two choices a test makes:

- ``tls=True``: its HTTPS port with a self-signed certificate made here (``openssl``), the
  plain port redirecting to it, as in production. ``tls=False`` (the default, for the tests
  of routing, retries and failovers): the plain port only, without the redirect, so their
  clients speak plain HTTP to it; every other rule is the shipped one.
- ``rate_limit``: the per-client limit (requests in 10 s). Tests send all their load from
  127.0.0.1, one client, so by default it is set far above what they send.
"""
import http.client
import json
import re
import shutil
import socket
import ssl
import subprocess

import pytest

from tests.servers import ROOT, Process, free_port, wait_until

CONFIG = ROOT / "deploy" / "haproxy" / "haproxy.cfg"
SHIPPED_RATE_LIMIT = 300


def require_haproxy():
    if not shutil.which("haproxy"):
        pytest.skip("these tests need HAProxy as the front proxy: apt-get install haproxy (make test does, as root)")


def self_signed_certificate(directory):
    """(PEM of certificate + key for HAProxy, certificate alone for clients), for localhost and 127.0.0.1."""
    if not shutil.which("openssl"):
        pytest.skip("the TLS tests make their certificate with the openssl command: apt-get install openssl")
    key, cert, pem = directory / "tls-key.pem", directory / "tls-cert.pem", directory / "tls-haproxy.pem"
    if not pem.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )
        pem.write_bytes(cert.read_bytes() + key.read_bytes())
    return pem, cert


def _set(conf, old, new, count=1):
    assert conf.count(old) == count, f"deploy/haproxy/haproxy.cfg changed: {old!r} is not there {count} time(s)"
    return conf.replace(old, new)


class FrontProxy(Process):
    """deploy/haproxy/haproxy.cfg on 127.0.0.1, with ``servers`` ({name: "ip:port"}) as backends."""

    def __init__(self, directory, servers, admin_socket=None, tls=False, rate_limit=1_000_000):
        require_haproxy()
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        conf = CONFIG.read_text()
        # Each request's log line (and how it ended) in the proxy's output file.
        conf = _set(conf, "    log /dev/log local0\n", "    log stdout format raw local0\n")
        conf = _set(conf, "bind :80\n", f"bind 127.0.0.1:{self.port}\n")
        if tls:
            pem, self.certificate = self_signed_certificate(directory)
            conf = _set(conf, "bind :443 ssl crt /etc/haproxy/certs/foodapp.pem",
                        f"bind 127.0.0.1:{self.tls_port} ssl crt {pem}")
        else:
            self.certificate = None
            conf = re.sub(r"(?m)^\s*bind :443 ssl .*\n", "", conf)
            conf = re.sub(r"(?m)^\s*http-request redirect scheme https .*\n", "", conf)
        conf = _set(conf, f"gt {SHIPPED_RATE_LIMIT} }}", f"gt {rate_limit} }}")
        conf = _set(conf, f"more than {SHIPPED_RATE_LIMIT} requests", f"more than {rate_limit} requests")
        for code in (408, 503, 504):
            conf = conf.replace(f"/etc/haproxy/errors/foodapp-{code}.http", str(ROOT / "deploy" / "haproxy" / f"{code}.http"))
        conf = conf.replace("/run/haproxy/admin.sock", str(admin_socket)) if admin_socket else \
            re.sub(r"(?m)^\s*stats socket .*\n", "", conf)
        lines = [f"    server {name} {address} check\n" for name, address in servers.items()]
        conf = re.sub(r"(?m)(^    server .*\n)+", "".join(lines), conf)
        path = directory / f"haproxy-{self.port}.cfg"
        path.write_text(conf)
        self.admin_socket = admin_socket
        super().__init__(["haproxy", "-db", "-f", path], directory / f"haproxy-{self.port}.log")

    @property
    def url(self):
        """The plain-HTTP address (with tls=True it only redirects to tls_url)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def tls_url(self):
        return f"https://127.0.0.1:{self.tls_port}"

    def start(self):
        super().start()
        wait_until(self._answers, 30, "the front proxy to answer")
        return self

    def request(self, method, path, headers=None, body=None, tls=None, timeout=10):
        """(status, {lower-case header: [values]}, body bytes) of one request, redirects not followed."""
        tls = self.tls_port is not None if tls is None else tls
        if tls:
            context = ssl.create_default_context(cafile=str(self.certificate))
            connection = http.client.HTTPSConnection("127.0.0.1", self.tls_port, timeout=timeout, context=context)
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            found = {}
            for name, value in response.getheaders():
                found.setdefault(name.lower(), []).append(value)
            return response.status, found, response.read()
        finally:
            connection.close()

    def json(self, method, path, **options):
        status, headers, body = self.request(method, path, **options)
        return status, headers, json.loads(body)

    def stat(self, proxy_name, server_name):
        """One row of the runtime API's `show stat` as a dict (needs admin_socket)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.admin_socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        names = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(names, line.split(",")))
            if row.get("pxname") == proxy_name and row.get("svname") == server_name:
                return row
        raise AssertionError(f"no {proxy_name}/{server_name} in show stat:\n{data.decode()}")

    def _answers(self):
        assert self.alive(), self.output()
        try:
            return self.request("GET", "/readyz", timeout=2)[0] == 200
        except OSError:
            return False


def behind_proxy_ini(directory):
    """testing.ini with production.ini's [server:main] lines for life behind the proxy: the
    proxy trust (trusted_proxy, trusted_proxy_headers) and the idle connection bounds."""
    production = (ROOT / "production.ini").read_text()
    server = production.split("[server:main]", 1)[1].split("\n[", 1)[0]
    wanted = {}
    for name in ("trusted_proxy", "trusted_proxy_headers", "channel_timeout", "cleanup_interval", "threads"):
        match = re.search(rf"(?m)^{name} = .*$", server)
        assert match, f"production.ini's [server:main] has no {name}"
        wanted[name] = match.group(0)
    text = (ROOT / "testing.ini").read_text()
    for name, line in wanted.items():
        if re.search(rf"(?m)^{name} = .*$", text):
            text = re.sub(rf"(?m)^{name} = .*$", line, text)
        else:
            text = text.replace("[server:main]\n", f"[server:main]\n{line}\n", 1)
    path = directory / "behind-proxy.ini"
    path.write_text(text)
    return path
