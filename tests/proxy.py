"""HOST 0 for the tests: HAProxy run with deploy/haproxy/haproxy.cfg, pointed at test backends."""
import re
import shutil

import pytest

from tests.servers import ROOT, Process, free_port, http, wait_until


def require_haproxy():
    if not shutil.which("haproxy"):
        pytest.skip("these tests need HAProxy as the front proxy: apt-get install haproxy (make test does, as root)")


class FrontProxy(Process):
    """deploy/haproxy/haproxy.cfg on 127.0.0.1, with ``servers`` ({name: "ip:port"}) as backends."""

    def __init__(self, directory, servers, admin_socket=None):
        require_haproxy()
        self.port = free_port()
        conf = (ROOT / "deploy" / "haproxy" / "haproxy.cfg").read_text()
        # Each request's log line (and how it ended) in the proxy's output file.
        conf = conf.replace("    log /dev/log local0\n", "    log stdout format raw local0\n")
        conf = conf.replace("bind :80", f"bind 127.0.0.1:{self.port}")
        for code in (503, 504):
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
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        super().start()
        wait_until(self._answers, 30, "the front proxy to answer")
        return self

    def _answers(self):
        assert self.alive(), self.output()
        try:
            return http("GET", f"{self.url}/readyz", timeout=2)[0] == 200
        except OSError:
            return False
