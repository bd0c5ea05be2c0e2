"""The seed's hosts as network namespaces: A, B and C on a bridge, this namespace as HOST 0.

Everything is made by the test and removed after it: the namespaces, their veth links, the
bridge. Addresses come from a /24 of 10.0.0.0/8 that no route of this machine uses, so
traffic goes only to the test's own hosts.
"""
import ipaddress
import itertools
import os
import signal
import subprocess

import pytest

from tests.servers import wait_until

_networks = itertools.count()


def ip(*args, check=True):
    result = subprocess.run(["ip", *map(str, args)], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(map(str, args))}: {result.stderr.strip()}")
    return result


def free_subnet(third=47, what="the test hosts"):
    """A 10.x.<third>.0/24 that no route of this machine uses."""
    used = [ipaddress.ip_network(line.split()[0], strict=False)
            for line in ip("-4", "route", "show", "table", "all").stdout.splitlines()
            if line and line.split()[0][0].isdigit()]
    for second in range(213, 255):
        candidate = ipaddress.ip_network(f"10.{second}.{third}.0/24")
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise RuntimeError(f"no free 10.x.{third}.0/24 for {what}")


def require_namespaces():
    """Skip, saying why, when this process cannot make network namespaces."""
    if os.geteuid() != 0:
        pytest.skip("the host drills need root to create network namespaces (ip netns add)")
    probe = f"fa{os.getpid() % 100000}probe"
    try:
        result = ip("netns", "add", probe, check=False)
    except FileNotFoundError:
        pytest.skip("the host drills need the `ip` command: apt-get install iproute2")
    if result.returncode != 0:
        pytest.skip(f"cannot create network namespaces here: {result.stderr.strip()}")
    ip("netns", "delete", probe, check=False)


class Network:
    """Hosts on one bridge; ``address[name]`` is each host's address."""

    def __init__(self, names=("A", "B", "C")):
        # Short (interface names hold 15 characters) and new for each network: the kernel
        # may still be tearing down the previous one's links.
        self.tag = f"f{os.getpid() % 100000}{next(_networks)}"
        self.bridge = f"{self.tag}br"
        subnet = free_subnet()
        hosts = list(subnet.hosts())
        self.prefix = subnet.prefixlen
        self.gateway = str(hosts[0])
        self.names = names
        self.address = {name: str(hosts[10 + i]) for i, name in enumerate(names)}

    def ns(self, name):
        return f"{self.tag}-{name}"

    def exec_prefix(self, name):
        return ["ip", "netns", "exec", self.ns(name)]

    def _link(self, name):
        return f"{self.tag}{name}h"

    def up(self):
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/{self.prefix}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for name in self.names:
            ns, outside, inside = self.ns(name), self._link(name), f"{self.tag}{name}n"
            ip("netns", "add", ns)
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", inside, "netns", ns)
            ip("link", "set", outside, "master", self.bridge, "up")
            ip("-n", ns, "addr", "add", f"{self.address[name]}/{self.prefix}", "dev", inside)
            ip("-n", ns, "link", "set", inside, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        return self

    def pids(self, name):
        result = ip("netns", "pids", self.ns(name), check=False)
        return [int(pid) for pid in result.stdout.split()]

    def kill_all(self, name):
        """Every process of the host dies at once."""
        for pid in self.pids(name):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: not self.pids(name), 10, f"host {name}'s processes to be gone")

    def cut(self, name):
        """The host's network link goes down."""
        ip("link", "set", self._link(name), "down")

    def partition(self, name, others):
        """``name`` can no longer talk to ``others`` (nor they to it); HOST 0 still reaches all."""
        for other in others:
            ip("-n", self.ns(name), "route", "add", "blackhole", f"{self.address[other]}/32")
            ip("-n", self.ns(other), "route", "add", "blackhole", f"{self.address[name]}/32")

    def heal(self, name, others):
        for other in others:
            ip("-n", self.ns(name), "route", "del", "blackhole", f"{self.address[other]}/32", check=False)
            ip("-n", self.ns(other), "route", "del", "blackhole", f"{self.address[name]}/32", check=False)

    def down(self):
        for name in self.names:
            for pid in self.pids(name):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            ip("link", "delete", self._link(name), check=False)
            ip("netns", "delete", self.ns(name), check=False)
        ip("link", "delete", self.bridge, check=False)
