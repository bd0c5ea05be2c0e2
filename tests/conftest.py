"""Fixtures: private redis-servers on free ports, the app built from testing.ini, workers."""
import dramatiq
import plaster
import pytest
import webtest

import foodapp
from tests.servers import TESTING_INI, RedisServer


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_server):
    client = redis_server.client(decode_responses=True)
    yield client
    client.close()


def testing_settings(**overrides):
    """testing.ini's [app:main] settings, with ini-style overrides ("jobs.status_ttl": "1")."""
    settings = plaster.get_settings(str(TESTING_INI), "app:main")
    settings.update(overrides)
    return settings


def make_app(**overrides):
    """Build the app as production does, from testing.ini through main()."""
    return webtest.TestApp(foodapp.main({"__file__": str(TESTING_INI)}, **testing_settings(**overrides)))


@pytest.fixture
def app(redis_server, monkeypatch):
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    return make_app()


@pytest.fixture
def broker(app):
    return dramatiq.get_broker()


def start_worker(broker, threads=1):
    """An in-process Dramatiq worker, booted as the `dramatiq` command boots one."""
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=50)
    worker.start()
    return worker


@pytest.fixture
def worker(broker):
    worker = start_worker(broker)
    try:
        yield worker
    finally:
        worker.stop()


def drain(broker, worker, timeout=15):
    """Wait until every declared queue (and its delay queue) is empty and processed."""
    for queue_name in sorted(broker.queues):
        broker.join(queue_name, timeout=timeout * 1000)
    worker.join()
