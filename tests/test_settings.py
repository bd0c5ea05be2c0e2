"""Settings: read from the ini, overridden from the environment, secrets never in the ini."""
import pytest

from foodapp.settings import _PARSERS, ENVIRONMENT, SECRETS, Settings, SettingsError, environment_name, from_ini


def test_defaults_and_ini_values():
    settings = from_ini({"redis.url": "redis://10.0.0.1:6380/2", "jobs.max_retries": "7"}, environ={})
    assert settings.redis_url == "redis://10.0.0.1:6380/2"
    assert settings.jobs_max_retries == 7
    assert settings.jobs_status_ttl == 86400


def test_the_environment_overrides_the_ini():
    settings = from_ini(
        {"redis.url": "redis://127.0.0.1:6379/0"},
        environ={"FOODAPP_REDIS_URL": "redis://127.0.0.1:7000/0", "FOODAPP_REDIS_PASSWORD": "s3cret",
                 "FOODAPP_REDIS_SENTINELS": "a:26379 b:26380"},
    )
    assert settings.redis_url == "redis://127.0.0.1:7000/0"
    assert settings.redis_password == "s3cret"
    assert settings.redis_sentinels == (("a", 26379), ("b", 26380))
    assert "s3cret" not in repr(settings)


def test_a_password_in_the_ini_is_refused_with_the_variable_to_use():
    with pytest.raises(SettingsError, match="FOODAPP_REDIS_PASSWORD"):
        from_ini({"redis.password": "hunter2"}, environ={})


@pytest.mark.parametrize("raw, message", [
    ({"jobs.max_retries": "many"}, "jobs.max_retries must be a whole number"),
    ({"dashboard.enabled": "perhaps"}, "dashboard.enabled must be true or false"),
    ({"redis.sentinels": "hostA"}, "'hostA' is not host:port"),
    ({"redis.url": "http://x"}, "redis.url must start with redis://"),
    ({"dashboard.prefix": "/jobs/"}, "dashboard.prefix must start with /"),
    ({"workers.heartbeat_timeout": "1"}, "more than twice workers.heartbeat_interval"),
    ({"enqueue.replicas": "1", "enqueue.replica_timeout_ms": "2000", "redis.socket_timeout": "2"},
     r"enqueue.replica_timeout_ms \(2000\) must be shorter than redis.socket_timeout \(2 s\)"),
])
def test_bad_values_are_named(raw, message):
    with pytest.raises(SettingsError, match=message):
        from_ini(raw, environ={})


def test_the_three_ini_files_have_the_same_sections_and_keys():
    import configparser
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    shapes = []
    for name in ("development.ini", "testing.ini", "production.ini"):
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(root / name)
        # A formatter may name its class (testing.ini: foodapp.logcontext.TextFormatter, for the job ids).
        shapes.append([(section, sorted(k for k in parser[section]
                                        if k != "http_port" and not (section.startswith("formatter_") and k == "class")))
                       for section in parser.sections()])
    assert shapes[0] == shapes[1]
    # production adds only the proxy trust settings of waitress
    prod = dict(shapes[2])
    assert set(prod["server:main"]) - set(dict(shapes[0])["server:main"]) == {"trusted_proxy", "trusted_proxy_headers"}


# One valid value per kind of setting, for the rule's test; a new kind needs a line here.
SAMPLES = {"_int": "3", "_float": "3.5", "_bool": "true", "_hostports": "sentinel-x:26390", "_networks": "10.9.0.0/16",
           "_public_url": "https://food.example.com", "_periodic_jobs": "r = */5 * * * * report",
           "_timezone": "Europe/Madrid"}
STRINGS = {"redis.url": "redis://10.1.2.3:6390/4", "dashboard.prefix": "/cola"}
# Variables foodapp's own tools set (foodapp/dev.py, foodapp/worker.py): no setting may be named like them.
TOOL_VARIABLES = {"FOODAPP_INI", "FOODAPP_BIN", "FOODAPP_ROOT", "FOODAPP_EMBEDDED_REDIS",
                  "FOODAPP_REDIS_START", "FOODAPP_REDIS_SERVER", "FOODAPP_REDIS_PORT"}
LOGIN = {"FOODAPP_DASHBOARD_USERNAME": "ops", "FOODAPP_DASHBOARD_PASSWORD_HASH": "scrypt$x"}


def sample(name):
    parse = _PARSERS[name]
    raw = SAMPLES.get(parse.__name__) if parse else STRINGS.get(name, "from-the-environment")
    assert raw is not None, f"add a sample value for the parser of {name} to SAMPLES"
    return raw


@pytest.mark.parametrize("name", sorted(_PARSERS))
def test_every_setting_is_overridden_by_foodapp_section_name(name):
    parse, raw = _PARSERS[name], sample(name)
    variable = environment_name(name)
    assert variable == "FOODAPP_" + name.upper().replace(".", "_")
    ini = {} if name in SECRETS else {name: ""}
    settings = from_ini(ini, environ={**LOGIN, variable: raw})
    assert getattr(settings, name.replace(".", "_")) == (parse(raw, name) if parse else raw)


def test_the_rule_by_example():
    settings = from_ini({"enqueue.replicas": "0", "jobs.max_retries": "3", "orders.max_batch": "100"},
                        environ={"FOODAPP_ENQUEUE_REPLICAS": "1", "FOODAPP_JOBS_MAX_RETRIES": "9"})
    assert (settings.enqueue_replicas, settings.jobs_max_retries, settings.orders_max_batch) == (1, 9, 100)


@pytest.mark.parametrize("name", sorted(ENVIRONMENT))
def test_the_older_names_keep_working(name):
    settings = from_ini({}, environ={**LOGIN, ENVIRONMENT[name]: sample(name)})
    assert getattr(settings, name.replace(".", "_")) not in (None, Settings.__dataclass_fields__[name.replace(".", "_")].default)


def test_sentinel_password_by_either_name_and_a_conflict_is_named():
    assert from_ini({}, environ={"FOODAPP_SENTINEL_PASSWORD": "a"}).redis_sentinel_password == "a"
    assert from_ini({}, environ={"FOODAPP_REDIS_SENTINEL_PASSWORD": "a"}).redis_sentinel_password == "a"
    both = {"FOODAPP_REDIS_SENTINEL_PASSWORD": "a", "FOODAPP_SENTINEL_PASSWORD": "a"}
    assert from_ini({}, environ=both).redis_sentinel_password == "a"
    with pytest.raises(SettingsError, match="FOODAPP_REDIS_SENTINEL_PASSWORD and FOODAPP_SENTINEL_PASSWORD: keep one"):
        from_ini({}, environ={**both, "FOODAPP_SENTINEL_PASSWORD": "b"})


def test_an_empty_variable_counts_as_unset():
    settings = from_ini({"jobs.max_retries": "7"}, environ={"FOODAPP_JOBS_MAX_RETRIES": "", "FOODAPP_REDIS_URL": "  "})
    assert settings.jobs_max_retries == 7 and settings.redis_url == "redis://127.0.0.1:6379/0"


def test_a_bad_value_from_the_environment_names_the_variable():
    with pytest.raises(SettingsError, match=r"jobs.max_retries \(from the environment variable "
                                            r"FOODAPP_JOBS_MAX_RETRIES\) must be a whole number, got 'many'"):
        from_ini({"jobs.max_retries": "3"}, environ={"FOODAPP_JOBS_MAX_RETRIES": "many"})


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_a_secret_in_the_ini_is_refused_even_with_its_variable_set(name):
    variable = ENVIRONMENT.get(name) or environment_name(name)
    with pytest.raises(SettingsError, match=f"{name} must not be written in the ini file.*{variable}"):
        from_ini({name: "hunter2"}, environ={variable: "hunter2"})


def test_no_setting_is_named_like_a_variable_of_foodapps_tools():
    assert not {environment_name(name) for name in _PARSERS} & TOOL_VARIABLES


def test_the_rule_is_documented():
    from pathlib import Path

    docs = Path(__file__).resolve().parent.parent / "docs" / "production.md"
    assert "FOODAPP_<SECTION>_<NAME>" in docs.read_text()


def test_a_built_app_takes_its_settings_from_the_environment(redis_server, monkeypatch):
    from tests.conftest import make_app

    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    monkeypatch.setenv("FOODAPP_ORDERS_MAX_BATCH", "2")
    monkeypatch.setenv("FOODAPP_ORDERS_MAX_ITEM_LENGTH", "5")
    app = make_app()
    assert app.get("/openapi.json").json["components"]["schemas"]["Menu"]["maxItems"] == 2
    app.post_json("/menu", [{"comer": "pan"}] * 3, status=400)
    app.get("/comer/patata", status=400)
    app.get("/comer/pan", status=202)


def test_a_unix_socket_redis_url_works(tmp_path, monkeypatch):
    """redis.url = unix:///path/redis.sock (Redis on the same host, no TCP): make_client used
    to pass TCP-only options (socket_keepalive) and every request failed with a TypeError."""
    from tests.conftest import make_app
    from tests.servers import RedisServer

    socket_path = tmp_path / "redis.sock"
    server = RedisServer(tmp_path, extra=("--unixsocket", socket_path, "--unixsocketperm", "700"))
    try:
        server.start()
        monkeypatch.setenv("FOODAPP_REDIS_URL", f"unix://{socket_path}?db=0")
        app = make_app()
        job_id = app.get("/comer/platano", status=202).json["job_id"]
        assert app.get(f"/api/jobs/{job_id}", status=200).json["state"] == "queued"
        assert server.client().llen("dramatiq:comer") == 1
    finally:
        server.stop()


def test_a_web_process_hands_the_gil_over_sooner_and_the_setting_can_turn_it_off(redis_server, monkeypatch):
    """web.switch_interval_ms (0.5 by default) is applied by the app factory; 0 leaves
    Python's own interval; a value out of range is refused at start, naming the setting."""
    import sys

    from tests.conftest import make_app

    before = sys.getswitchinterval()
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    try:
        sys.setswitchinterval(0.005)
        make_app()
        assert sys.getswitchinterval() == pytest.approx(0.0005)
        sys.setswitchinterval(0.005)
        monkeypatch.setenv("FOODAPP_WEB_SWITCH_INTERVAL_MS", "0")
        make_app()
        assert sys.getswitchinterval() == pytest.approx(0.005)
        monkeypatch.setenv("FOODAPP_WEB_SWITCH_INTERVAL_MS", "-1")
        with pytest.raises(SettingsError, match="web.switch_interval_ms"):
            make_app()
    finally:
        sys.setswitchinterval(before)
