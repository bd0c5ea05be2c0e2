"""Settings: read from the ini, overridden from the environment, secrets never in the ini."""
import pytest

from foodapp.settings import SettingsError, from_ini


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
        shapes.append([(section, sorted(k for k in parser[section] if k != "http_port")) for section in parser.sections()])
    assert shapes[0] == shapes[1]
    # production adds only the proxy trust settings of waitress
    prod = dict(shapes[2])
    assert set(prod["server:main"]) - set(dict(shapes[0])["server:main"]) == {"trusted_proxy", "trusted_proxy_headers"}
