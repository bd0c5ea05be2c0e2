"""The development profile (development.ini, `make run`) is reachable from this machine only."""
import configparser
import ipaddress
import re

from foodapp.dev import exposure_warning
from tests.servers import ROOT


def listen_hosts(ini_text):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(ini_text)
    return [item.rpartition(":")[0].strip("[]") for item in parser["server:main"]["listen"].split()]


def test_development_listens_on_loopback_only():
    hosts = listen_hosts((ROOT / "development.ini").read_text())
    assert hosts and all(ipaddress.ip_address(host).is_loopback for host in hosts), hosts


def test_make_runs_redis_listens_on_loopback_only():
    conf = (ROOT / "supervisor" / "development.conf").read_text()
    redis = re.search(r"(?ms)^\[program:redis\].*?^command = (.*?)$", conf).group(1)
    assert "--bind 127.0.0.1" in redis and "0.0.0.0" not in conf


def test_make_run_warns_when_a_copy_is_opened_up_without_a_login():
    text = (ROOT / "development.ini").read_text()
    assert exposure_warning(text) is None
    opened_text = re.sub(r"(?m)^listen = .*$", "listen = 0.0.0.0:8080", text)
    warning = exposure_warning(opened_text)
    assert "0.0.0.0:8080" in warning and "dashboard.login_required" in warning
    with_login = opened_text.replace("dashboard.login_required = false", "dashboard.login_required = true")
    assert exposure_warning(with_login) is None
