"""A host of the seed's production, on this machine: supervisord running supervisor/production.conf.

Each host gets its own folder laid out like a checkout (supervisor/production.conf,
production.ini, .venv, var/), so the config's ``%(here)s/..`` paths work unchanged. The
tests shrink the number of workers and use testing.ini's values as the host's
production.ini (one private Redis instead of Sentinels).
"""
import http.client
import os
import re
import signal
import subprocess
import xmlrpc.client
from pathlib import Path

from foodapp.supervisors import TimedTransport
from tests.servers import BIN, ROOT, TESTING_INI, Process, http, processes_with, wait_until


def set_ini(text, **values):
    """Replace ``name = value`` lines of an ini text; names use dots ("jobs.max_crashes")."""
    for name, value in values.items():
        text, count = re.subn(rf"(?m)^{re.escape(name)} = .*$", f"{name} = {value}", text)
        assert count == 1, f"no setting {name} in the ini"
    return text


class Host:
    """supervisord with production.conf, shrunk: ``workers`` queue workers, ``batch`` batch workers."""

    def __init__(self, tmp_path, name, redis_url, *, workers=2, batch=1, threads=1,
                 modules=(), settings=None, env=None):
        self.name = name
        self.root = Path(tmp_path) / name
        (self.root / "supervisor").mkdir(parents=True)
        for folder in ("var/log", "var/run"):
            (self.root / folder).mkdir(parents=True)
        (self.root / ".venv").symlink_to(BIN.parent)

        conf = (ROOT / "supervisor" / "production.conf").read_text()
        conf = re.sub(r"(?m)^\[program:workers\]\n((?:.*\n)*?)numprocs = 8",
                      lambda m: f"[program:workers]\n{m.group(1)}numprocs = {workers}", conf)
        conf = re.sub(r"(?m)^\[program:batch\]\n((?:.*\n)*?)numprocs = 5",
                      lambda m: f"[program:batch]\n{m.group(1)}numprocs = {batch}", conf)
        conf = conf.replace("--threads 4", f"--threads {threads}")
        if modules:
            conf = conf.replace("dramatiq foodapp.worker", "dramatiq foodapp.worker " + " ".join(modules))
        self.conf = self.root / "supervisor" / "production.conf"
        self.conf.write_text(conf)

        # The web processes listen on <prefix>0 and <prefix>1 (production: 8080, 8081).
        prefix = free_port_pair_prefix()
        assert "http_port=808%(process_num)d" in conf, "supervisor/production.conf's web command changed"
        conf = conf.replace("http_port=808%(process_num)d", f"http_port={prefix}%(process_num)d")
        self.conf.write_text(conf)
        self.web_ports = [prefix * 10, prefix * 10 + 1]
        self.port = self.web_ports[0]
        ini = TESTING_INI.read_text()
        # As production.ini: the port is the pserve command's http_port=.
        ini = re.sub(r"(?m)^listen = .*$", "listen = 127.0.0.1:%(http_port)s", ini)
        (self.root / "production.ini").write_text(set_ini(ini, **(settings or {})))

        self.workers, self.batch = workers, batch
        self.process = Process(
            [BIN / "supervisord", "-n", "-c", self.conf], self.root / "supervisord.out",
            # PYTHONPATH: test-only actor modules (tests/) import in the workers too.
            # app.public_url: web_0's URL, so the status URLs handed out are absolute and reach the host.
            env={"FOODAPP_REDIS_URL": redis_url, "PYTHONPATH": str(ROOT),
                 "FOODAPP_APP_PUBLIC_URL": f"http://127.0.0.1:{self.web_ports[0]}", **(env or {})},
        )

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def programs(self):
        return (["web:web_0", "web:web_1"] + [f"workers:workers_{i:02d}" for i in range(self.workers)]
                + [f"batch:batch_{i:02d}" for i in range(self.batch)])

    def start(self, wait=True):
        self.process.start()
        if wait:
            self.wait_running()
        return self

    def ctl(self, *args, timeout=120):
        return subprocess.run(
            [BIN / "supervisorctl", "-c", self.conf, *args], capture_output=True, text=True, timeout=timeout,
        ).stdout

    def status(self):
        """{program: (state, pid or None)} from `supervisorctl status`."""
        found = {}
        for line in self.ctl("status").splitlines():
            match = re.match(r"^(\S+)\s+(\S+)(?:\s+pid (\d+))?", line)
            if match:
                found[match.group(1)] = (match.group(2), match.group(3) and int(match.group(3)))
        return found

    def wait_running(self, timeout=60):
        def all_running():
            assert self.process.alive(), self.process.output()
            status = self.status()
            return all(status.get(name, ("",))[0] == "RUNNING" for name in self.programs) and status
        status = wait_until(all_running, timeout, f"every program of host {self.name} to be RUNNING", interval=0.2)
        wait_until(lambda: self._web_answers(), timeout, f"host {self.name}'s web app")
        return status

    def _web_answers(self):
        try:
            return http("GET", self.url + "/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def program_of(self, pid):
        """The supervisord program running ``pid`` (a Dramatiq worker process or its parent)."""
        parents = {pid, parent_pid(pid)}
        for name, (_, program_pid) in self.status().items():
            if program_pid in parents:
                return name
        return None

    def pids(self):
        """Every live process belonging to this host: supervisord and all its descendants."""
        return processes_with(self.root)

    def kill_all(self):
        """The host dies: every one of its processes gets SIGKILL at once."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.proc.wait(10)
        wait_until(lambda: not self.pids(), 10, f"host {self.name}'s processes to be gone")

    def stop(self):
        if self.process.alive():
            # The same graceful stop as supervisord's own on SIGTERM (each program's
            # stopsignal, stopwaitsecs, then KILL), but every program at once: on SIGTERM
            # supervisord stops one group after another (workers, then batch, then web), a
            # Dramatiq group taking ~3 s. stopAllProcesses(wait=False) signals every program
            # now; supervisord's SIGTERM then waits until each one has stopped.
            transport = TimedTransport(serverurl=f"unix://{self.root / 'var' / 'run' / 'supervisor.sock'}", timeout=10)
            try:
                xmlrpc.client.ServerProxy("http://127.0.0.1", transport).supervisor.stopAllProcesses(False)
            except (OSError, http.client.HTTPException, xmlrpc.client.Error):
                pass  # supervisord is going or gone: its SIGTERM below does the rest
            finally:
                transport.close()
            self.process.proc.send_signal(signal.SIGTERM)
            try:
                self.process.proc.wait(120)
            except subprocess.TimeoutExpired:
                pass
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def log(self, program):
        path = self.root / "var" / "log" / f"{program.split(':')[-1]}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def free_port_pair_prefix():
    """A number N such that ports N0 and N1 are both free.

    Chosen below the kernel's ephemeral port range: the web processes bind them a second or
    so later, and meanwhile any outgoing connection could be given a port from that range.
    """
    import random
    import socket

    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    for _ in range(200):
        prefix = random.randrange(1000, max(1001, low // 10 - 1))  # ports 10000 and up
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", prefix * 10))
                b.bind(("127.0.0.1", prefix * 10 + 1))
            return prefix
        except OSError:
            continue
    raise RuntimeError("no pair of free ports")


def parent_pid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
