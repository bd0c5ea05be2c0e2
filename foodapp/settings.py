"""Read foodapp's settings from the ini file, with environment overrides in one place."""
import os
from dataclasses import dataclass, field

# Every setting can be overridden from the environment by one rule: FOODAPP_<SECTION>_<NAME>,
# the setting's name upper-cased with "_" for "." (enqueue.replicas: FOODAPP_ENQUEUE_REPLICAS;
# see environment_name). An empty variable counts as unset. Secrets are only ever read from
# the environment: the ini files in the repository never hold them.
#
# The names below were in use before the rule and keep working beside it (most are the
# rule's own name; FOODAPP_SENTINEL_PASSWORD is not). Setting both names of one setting to
# different values is refused.
ENVIRONMENT = {
    "redis.url": "FOODAPP_REDIS_URL",
    "redis.sentinels": "FOODAPP_REDIS_SENTINELS",
    "redis.master_name": "FOODAPP_REDIS_MASTER_NAME",
    "redis.password": "FOODAPP_REDIS_PASSWORD",
    "redis.sentinel_password": "FOODAPP_SENTINEL_PASSWORD",
    "dashboard.username": "FOODAPP_DASHBOARD_USERNAME",
    "dashboard.password_hash": "FOODAPP_DASHBOARD_PASSWORD_HASH",
    "security.detail_token": "FOODAPP_DETAIL_TOKEN",
}
SECRETS = {"redis.password", "redis.sentinel_password", "dashboard.password_hash", "security.detail_token",
           "supervisor.password"}


class SettingsError(ValueError):
    """A setting is missing or has a value foodapp cannot use."""


def _int(raw, name):
    try:
        return int(str(raw).strip())
    except ValueError:
        raise SettingsError(f"setting {name} must be a whole number, got {raw!r}") from None


def _float(raw, name):
    try:
        return float(str(raw).strip())
    except ValueError:
        raise SettingsError(f"setting {name} must be a number, got {raw!r}") from None


def _bool(raw, name):
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"setting {name} must be true or false, got {raw!r}")


def _networks(raw, name):
    import ipaddress

    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in str(raw).split())
    except ValueError as error:
        raise SettingsError(f"setting {name}: {error}; give networks as CIDR, e.g. 127.0.0.0/8 10.1.0.0/16") from None


def _public_url(raw, name):
    """The base URL clients reach foodapp at: scheme and host (and port), no path."""
    from urllib.parse import urlsplit

    value = str(raw).strip().rstrip("/")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError as error:
        raise SettingsError(f"setting {name}: {error}; give the URL clients use, e.g. https://food.example.com") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment \
            or parts.username or parts.password:
        raise SettingsError(
            f"setting {name} must be the scheme and host clients use, with no path, e.g. https://food.example.com "
            f"or http://127.0.0.1:8080, got {raw!r}"
        )
    return value


def _default_supervisor_url():
    # The socket of supervisor/production.conf (and development.conf) in the checkout this
    # code runs from: <checkout>/var/run/supervisor.sock. The ini files name it themselves.
    from pathlib import Path

    return f"unix://{Path(__file__).resolve().parent.parent / 'var' / 'run' / 'supervisor.sock'}"


def _hostports(raw, name):
    hosts = []
    for item in str(raw).split():
        host, sep, port = item.rpartition(":")
        if not sep or not host:
            raise SettingsError(f"setting {name}: {item!r} is not host:port")
        hosts.append((host, _int(port, name)))
    return tuple(hosts)


def _periodic_jobs(raw, name):
    """periodic.jobs: one schedule a line, ``<name> = <cron> <actor> [json args]``; each line
    is checked here (the cron expression, the arguments) and its actor once the actors are
    declared (foodapp.periodic.check_actors)."""
    from foodapp.periodic import BadSchedule, parse_jobs

    try:
        return parse_jobs(str(raw))
    except BadSchedule as error:
        raise SettingsError(f"setting {name}, {error}") from None


def _timezone(raw, name):
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    value = str(raw).strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"setting {name} must be a time zone name such as UTC or Europe/Madrid, got {raw!r}") from None
    return value


@dataclass(frozen=True)
class Settings:
    """Everything the web app and the workers need to agree on."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_sentinels: tuple = ()
    redis_master_name: str = "foodmaster"
    # The app's Redis user (production: "foodapp", deploy/redis/users.acl.in); None is
    # Redis's default user (a password alone, or no login at all).
    redis_username: str | None = None
    redis_password: str | None = field(default=None, repr=False)
    redis_sentinel_password: str | None = field(default=None, repr=False)
    redis_db: int = 0
    redis_socket_timeout: float = 5.0
    redis_namespace: str = "dramatiq"
    enqueue_replicas: int = 0
    enqueue_replica_timeout_ms: int = 1000
    enqueue_retry_seconds: float = 5.0
    enqueue_retry_after_seconds: int = 5
    jobs_status_ttl: int = 86400
    jobs_max_retries: int = 3
    jobs_min_backoff_ms: int = 1000
    jobs_max_backoff_ms: int = 300000
    jobs_time_limit_ms: int = 600000
    jobs_dead_letter_ttl: int = 7 * 86400
    jobs_max_crashes: int = 3
    workers_heartbeat_interval: float = 1.0
    workers_heartbeat_timeout: float = 10.0
    orders_max_item_length: int = 64
    orders_max_batch: int = 100
    orders_max_delay_seconds: int = 7 * 86400
    orders_idempotency_ttl: int = 86400
    orders_proxy_retry_ttl: int = 300
    kitchen_preparation_seconds: float = 0.05
    # How long a web process's thread may hold Python's GIL before another may take it
    # (sys.setswitchinterval, ms; Python's default is 5): see foodapp/__init__.py. 0 leaves
    # Python's default.
    web_switch_interval_ms: float = 0.5
    reports_martini_limit: int = 2
    dashboard_enabled: bool = True
    dashboard_prefix: str = "/jobs"
    dashboard_login_required: bool = False
    dashboard_username: str | None = None
    dashboard_password_hash: str | None = field(default=None, repr=False)
    dashboard_login_max_failures: int = 10
    dashboard_login_failure_window: int = 900
    reports_max_items: int = 100
    security_internal_networks: tuple = field(default_factory=lambda: _networks("127.0.0.0/8 ::1/128", ""))
    security_detail_token: str | None = field(default=None, repr=False)
    app_public_url: str | None = None
    ledger_retention_seconds: int = 86400
    # Periodic jobs (foodapp/periodic.py, run by foodapp-scheduler): the schedules parsed
    # from periodic.jobs, how late a tick may still fire (s), and the cron time zone.
    periodic_jobs: tuple = ()
    periodic_misfire_grace_seconds: int = 60
    periodic_timezone: str = "UTC"
    # The console's search index of recent jobs (foodapp/search.py): the most job ids it keeps
    # (besides dropping those older than jobs.status_ttl).
    ops_index_max_jobs: int = 200000
    security_require_passwords: bool = False
    # The console's Workers page: this host's supervisord (its XML-RPC interface), the
    # credentials of its [unix_http_server]/[inet_http_server] if it has any (environment
    # only: FOODAPP_SUPERVISOR_USERNAME, FOODAPP_SUPERVISOR_PASSWORD), and the program
    # groups the console may stop and start, spaces between (never the web processes or
    # Redis). The URL is checked where it is used (foodapp/supervisors.py).
    supervisor_url: str = field(default_factory=_default_supervisor_url)
    supervisor_username: str | None = None
    supervisor_password: str | None = field(default=None, repr=False)
    supervisor_groups: str = "workers batch"


# ini name -> parser (None: a string). The field of Settings is the name with "_" for ".".
_PARSERS = {
    "redis.url": None,
    "redis.sentinels": _hostports,
    "redis.master_name": None,
    "redis.username": None,
    "redis.password": None,
    "redis.sentinel_password": None,
    "redis.db": _int,
    "redis.socket_timeout": _float,
    "redis.namespace": None,
    "enqueue.replicas": _int,
    "enqueue.replica_timeout_ms": _int,
    "enqueue.retry_seconds": _float,
    "enqueue.retry_after_seconds": _int,
    "jobs.status_ttl": _int,
    "jobs.max_retries": _int,
    "jobs.min_backoff_ms": _int,
    "jobs.max_backoff_ms": _int,
    "jobs.time_limit_ms": _int,
    "jobs.dead_letter_ttl": _int,
    "jobs.max_crashes": _int,
    "workers.heartbeat_interval": _float,
    "workers.heartbeat_timeout": _float,
    "orders.max_item_length": _int,
    "orders.max_batch": _int,
    "orders.max_delay_seconds": _int,
    "orders.idempotency_ttl": _int,
    "orders.proxy_retry_ttl": _int,
    "kitchen.preparation_seconds": _float,
    "web.switch_interval_ms": _float,
    "reports.martini_limit": _int,
    "dashboard.enabled": _bool,
    "dashboard.prefix": None,
    "dashboard.login_required": _bool,
    "dashboard.username": None,
    "dashboard.password_hash": None,
    "dashboard.login_max_failures": _int,
    "dashboard.login_failure_window": _int,
    "reports.max_items": _int,
    "security.internal_networks": _networks,
    "security.detail_token": None,
    "app.public_url": _public_url,
    "ledger.retention_seconds": _int,
    "periodic.jobs": _periodic_jobs,
    "periodic.misfire_grace_seconds": _int,
    "periodic.timezone": _timezone,
    "ops.index_max_jobs": _int,
    "security.require_passwords": _bool,
    "supervisor.url": None,
    "supervisor.username": None,
    "supervisor.password": None,
    "supervisor.groups": None,
}


def environment_name(name):
    """The variable that overrides setting ``name``: "enqueue.replicas" -> FOODAPP_ENQUEUE_REPLICAS."""
    return "FOODAPP_" + name.replace(".", "_").upper()


def _from_environment(name, environ):
    """``(variable, value)`` overriding setting ``name`` (the rule's name or its older one), or None."""
    names = dict.fromkeys([environment_name(name), ENVIRONMENT.get(name)] if name in ENVIRONMENT
                          else [environment_name(name)])
    found = [(variable, environ[variable]) for variable in names if str(environ.get(variable) or "").strip()]
    if len({value for _, value in found}) > 1:
        raise SettingsError(
            f"setting {name} is given twice in the environment with different values, by "
            f"{found[0][0]} and {found[1][0]}: keep one of them"
        )
    return found[0] if found else None


def from_ini(raw, environ=None):
    """Build Settings from the ini's [app:main] values, then the environment (FOODAPP_<SECTION>_<NAME>)."""
    environ = os.environ if environ is None else environ
    values = {}
    for name, parse in _PARSERS.items():
        raw_value, source = raw.get(name), name
        if name in SECRETS and raw_value:
            raise SettingsError(
                f"setting {name} must not be written in the ini file; "
                f"set the environment variable {ENVIRONMENT.get(name) or environment_name(name)} instead"
            )
        override = _from_environment(name, environ)
        if override:
            raw_value, source = override[1], f"{name} (from the environment variable {override[0]})"
        if raw_value is None or (isinstance(raw_value, str) and not raw_value.strip()):
            continue
        values[name.replace(".", "_")] = parse(raw_value, source) if parse else str(raw_value).strip()
    settings = Settings(**values)
    _check(settings)
    return settings


def _check(settings):
    if not settings.redis_sentinels and not settings.redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(
            f"setting redis.url must start with redis://, rediss:// or unix://, got {settings.redis_url!r}"
        )
    if settings.enqueue_replicas and settings.enqueue_replica_timeout_ms / 1000 >= settings.redis_socket_timeout:
        raise SettingsError(
            f"setting enqueue.replica_timeout_ms ({settings.enqueue_replica_timeout_ms}) must be shorter than "
            f"redis.socket_timeout ({settings.redis_socket_timeout:g} s): a replica WAIT that outlasts the socket "
            "timeout ends in a connection error instead of an answer"
        )
    if not 0 <= settings.web_switch_interval_ms <= 1000:
        raise SettingsError(
            f"setting web.switch_interval_ms must be between 0 (Python's default, 5 ms) and 1000, "
            f"got {settings.web_switch_interval_ms:g}"
        )
    if settings.workers_heartbeat_timeout <= 2 * settings.workers_heartbeat_interval:
        raise SettingsError(
            "setting workers.heartbeat_timeout must be more than twice workers.heartbeat_interval, "
            "or a busy worker would be taken for dead"
        )
    if not settings.dashboard_prefix.startswith("/") or settings.dashboard_prefix.endswith("/"):
        raise SettingsError("setting dashboard.prefix must start with / and not end with one, e.g. /jobs")
    if settings.orders_max_item_length < 1:
        raise SettingsError("setting orders.max_item_length must be at least 1")
    if settings.ledger_retention_seconds < 1:
        raise SettingsError("setting ledger.retention_seconds must be at least 1 (seconds an entry is kept)")
    if settings.periodic_misfire_grace_seconds < 1:
        raise SettingsError("setting periodic.misfire_grace_seconds must be at least 1 (how late a tick may still fire)")
    if settings.ops_index_max_jobs < 1:
        raise SettingsError("setting ops.index_max_jobs must be at least 1 (how many recent jobs the console can search)")


def check_startup(settings, web):
    """Refuse to start a process (``web``: a web process, else a worker) without the secrets
    it needs. Workers never need the dashboard's credentials."""
    if settings.security_require_passwords:
        missing = []
        if not settings.redis_password:
            missing.append("FOODAPP_REDIS_PASSWORD (the password of the app's Redis user, see deploy/redis/users.acl)")
        if settings.redis_sentinels and not settings.redis_sentinel_password:
            missing.append("FOODAPP_SENTINEL_PASSWORD (the Sentinels' requirepass)")
        if missing:
            raise SettingsError("security.require_passwords is on: set " + " and ".join(missing))
    if web and settings.dashboard_login_required and not (settings.dashboard_username and settings.dashboard_password_hash):
        raise SettingsError(
            "dashboard.login_required is on: set FOODAPP_DASHBOARD_USERNAME and FOODAPP_DASHBOARD_PASSWORD_HASH "
            "(make the hash with `foodapp hash-password`)"
        )



def load_for_process(ini):
    """Settings from ``ini`` for a process that is not the web app (a worker, the scheduler):
    its [logging] set up (log lines carry the running job's id), the settings parsed and the
    secrets it needs checked, as the web app's startup does for itself."""
    import plaster

    from foodapp import logcontext

    logcontext.install()
    loader = plaster.get_loader(ini, protocols=["wsgi"])
    loader.setup_logging()
    settings = from_ini(loader.get_settings("app:main"))
    check_startup(settings, web=False)
    return settings

def includeme(config):
    """Parse the settings once and keep them on the registry as ``registry.foodapp``."""
    config.registry.foodapp = from_ini(config.get_settings())
    check_startup(config.registry.foodapp, web=True)
