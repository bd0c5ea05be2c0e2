"""Instructions per request, counted by valgrind's callgrind: a figure the machine's load
does not move (bench/breakdown.py, section 0).

``python -m bench.icount <redis url> <what> <calls>`` makes ``calls`` requests through
the WSGI app in this process (no HTTP server): ``bare`` (bench/bare_app.py), ``send``
(bench/send_app.py: plain Dramatiq's send()), ``comer`` (foodapp's GET /comer/plato) or
``menu`` (foodapp's POST /menu of 100 items). ``per_request`` runs it under callgrind for
two counts and divides the difference: start-up and warm-up cancel out. User-space
instructions only: the kernel's side of the socket calls is not counted.
"""
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
WHAT = ("bare", "send", "comer", "menu")


def request_maker(what):
    from bench.breakdown import MENU, requester

    if what == "bare":
        import bench.bare_app
        return requester(bench.bare_app.main({}), "GET", "/comer/plato", 202)
    if what == "send":
        import bench.send_app
        return requester(bench.send_app.main({}), "GET", "/comer/plato", 202)
    from tests.conftest import make_app
    app = make_app().app
    if what == "comer":
        return requester(app, "GET", "/comer/plato", 202)
    return requester(app, "POST", "/menu", 202, MENU)


def run(redis_url, what, calls):
    os.environ["FOODAPP_REDIS_URL"] = redis_url
    call = request_maker(what)
    for _ in range(20):  # warm up: imports, scripts loaded, caches filled
        call()
    for _ in range(calls):
        call()


def instructions(redis_url, what, calls):
    with tempfile.TemporaryDirectory() as here:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={here}/out", sys.executable, "-m", "bench.icount",
             redis_url, what, str(calls)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True)
    return int(re.search(r"Collected : (\d+)", out.stderr).group(1))


def per_request(redis_url, what, few=50, many=150):
    """Instructions one request costs: (I(many) - I(few)) / (many - few)."""
    return (instructions(redis_url, what, many) - instructions(redis_url, what, few)) / (many - few)


def redis_instructions(what, calls):
    """Instructions redis-server, under callgrind, runs for ``calls`` requests of ``what``
    (made here, without valgrind), its start-up and shutdown included."""
    from tests.servers import RedisServer

    with tempfile.TemporaryDirectory() as here:
        server = RedisServer(here)
        server.argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={here}/out", *map(str, server.argv)]
        server.start()
        try:
            run(server.url, what, calls)
            server.client().shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # the shutdown closes the connection it came on
        finally:
            server.proc.wait(60)
        return int(re.search(r"Collected : (\d+)", server.output()).group(1))


def redis_per_request(what, few=50, many=550):
    """Instructions one request of ``what`` costs redis-server."""
    return (redis_instructions(what, many) - redis_instructions(what, few)) / (many - few)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    run(sys.argv[1], sys.argv[2], int(sys.argv[3]))
