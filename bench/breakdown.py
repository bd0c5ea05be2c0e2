"""`make breakdown`: where the time of an order and of a job goes, to read beside `make bench`.

Four views, each on its own private redis-server (127.0.0.1, a free port):

0. Instructions per request in the web process, counted by callgrind (bench/icount.py),
   for a bare view, a send() view and foodapp's order and menu: a figure the machine's
   load does not move (skipped without valgrind).
1. In one process, no HTTP server: microseconds per request through the WSGI app for a
   bare Pyramid view, a view calling plain Dramatiq's send(), and foodapp's /comer/<item>
   and /menu; and per enqueue call, foodapp's enqueue_many against Dramatiq's enqueue.
2. cProfile of foodapp's /comer/<item> and /menu (100 items): the functions that cost most.
3. A worker drain, seen from Redis: the commands and scripts run per job and the share of a
   core redis-server used, for foodapp and plain Dramatiq.

The numbers are absolute and drift with the machine's load: read them as proportions.
"""
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import RedisServer, wait_until  # noqa: E402

CALLS = int(os.environ.get("PROFILE_CALLS", 2000))
MENU = json.dumps([{"comer": f"plato{i}"} for i in range(100)]).encode()


def per_call(fn, calls=CALLS):
    for _ in range(calls // 10):
        fn()
    began = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - began) / calls * 1e6


def requester(wsgi, method, path, status, body=None):
    from webob import Request

    def call():
        request = Request.blank(path, method=method, body=body, content_type="application/json" if body else None)
        response = request.get_response(wsgi)
        assert response.status_int == status, response.status
    return call


def top_functions(fn, calls, limit=14):
    profile = cProfile.Profile()
    profile.runcall(lambda: [fn() for _ in range(calls)])
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(limit)
    return "\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip())


def web(tmp):
    server = RedisServer(tmp).start()
    try:
        wait_until(server.answers, 10, "redis-server")
        os.environ["FOODAPP_REDIS_URL"] = server.url
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker

        import bench.bare_app
        import bench.send_app
        from tests.conftest import make_app

        apps = {"bare Pyramid view": bench.bare_app.main({}), "view calling Dramatiq send()": bench.send_app.main({})}
        food = make_app().app
        broker = dramatiq.get_broker()
        print("1. microseconds per call, in one process (no HTTP server)")
        for name, wsgi in apps.items():
            print(f"   {name:40s} {per_call(requester(wsgi, 'GET', '/comer/plato', 202)):8.1f}")
        comer = requester(food, "GET", "/comer/plato", 202)
        menu = requester(food, "POST", "/menu", 202, MENU)
        print(f"   {'foodapp GET /comer/plato':40s} {per_call(comer):8.1f}")
        print(f"   {'foodapp GET /comer/<too long> (400)':40s} "
              f"{per_call(requester(food, 'GET', '/comer/' + 'x' * 300, 400)):8.1f}")
        print(f"   {'foodapp POST /menu, per item':40s} {per_call(menu, CALLS // 20) / 100:8.1f}")
        actor = broker.get_actor("comer")
        print(f"   {'foodapp enqueue_many, one job':40s} "
              f"{per_call(lambda: broker.enqueue_many([(actor.message('plato'), None)])):8.1f}")
        plain = RedisBroker(url=server.url)
        message = actor.message("plato")
        print(f"   {'Dramatiq RedisBroker.enqueue':40s} {per_call(lambda: plain.enqueue(message)):8.1f}")
        client = server.client()
        print(f"   {'redis-py LPUSH (one round trip)':40s} {per_call(lambda: client.lpush('profile', 'x')):8.1f}")

        print("\n2. cProfile, foodapp GET /comer/plato (by own time)")
        print(top_functions(comer, CALLS))
        print("\n   cProfile, foodapp POST /menu with 100 items (by own time)")
        print(top_functions(menu, CALLS // 40))
        client.config_resetstat()
        per_call(comer, 500)
        stats = client.info("commandstats")["cmdstat_evalsha"]
        print(f"\n   inside Redis, foodapp's enqueue script: {stats['usec_per_call']} us per order")
    finally:
        server.stop()


def drain(tmp, kind, jobs=10000):
    from bench import run

    with tempfile.TemporaryDirectory(dir=tmp) as here:
        server = RedisServer(here).start()
        try:
            broker = run.broker_for(kind, server.url)
            actor = broker.get_actor("noop")
            for _ in range(jobs):
                broker.enqueue(actor.message())
            client = server.client()
            client.config_resetstat()
            before = client.info("cpu")
            process = run.worker(here, kind, server.url, threads=run.THREADS)
            try:
                wait_until(lambda: client.llen("dramatiq:bench") < jobs, 60, f"the {kind} worker", interval=0.001)
                began = time.monotonic()
                wait_until(lambda: client.llen("dramatiq:bench") == 0 and client.hlen("dramatiq:bench.msgs") == 0,
                           300, f"{kind} to drain", interval=0.02)
                seconds = time.monotonic() - began
                after = client.info("cpu")
            finally:
                process.stop()
            cpu = sum(after[k] - before[k] for k in ("used_cpu_user", "used_cpu_sys")) / seconds * 100
            print(f"   {kind}: {jobs / seconds:.0f} jobs/s, redis-server used {cpu:.0f}% of a core; per job:")
            stats = client.info("commandstats")
            for name, stat in sorted(stats.items(), key=lambda item: -item[1]["usec"])[:6]:
                print(f"     {name.removeprefix('cmdstat_'):14s} {stat['calls'] / jobs:5.2f} calls, "
                      f"{stat['usec_per_call']:6.2f} us each")
        finally:
            server.stop()


def instructions(tmp):
    """Section 0: instructions per request (callgrind), when valgrind is installed."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    from bench import icount

    if not shutil.which("valgrind"):
        print("0. skipped: instructions per request need valgrind (apt-get install valgrind)\n")
        return
    server = RedisServer(tmp).start()
    try:
        wait_until(server.answers, 10, "redis-server")
        with ThreadPoolExecutor(2) as pool:  # two valgrinds at once: about two minutes
            counts = dict(zip(icount.WHAT, pool.map(lambda what: icount.per_request(server.url, what), icount.WHAT)))
    finally:
        server.stop()
    print("0. instructions per request in the web process (callgrind; user space, no HTTP server)")
    for what, label in (("bare", "bare Pyramid view"), ("send", "view calling Dramatiq send()"),
                        ("comer", "foodapp GET /comer/plato"), ("menu", "foodapp POST /menu, 100 items")):
        print(f"   {label:40s} {counts[what]:12,.0f}")
    print(f"   foodapp order / send() view: {counts['comer'] / counts['send']:.2f}; "
          f"a menu item / send() view: {counts['menu'] / 100 / counts['send']:.2f}")
    print("   and in redis-server (callgrind), per request:")
    for what, label in (("send", "view calling Dramatiq send()"), ("comer", "foodapp GET /comer/plato")):
        print(f"   {label:40s} {icount.redis_per_request(what):12,.0f}")
    print()


def main():
    tmp = tempfile.mkdtemp(prefix="foodapp-profile-")
    instructions(tmp)
    web(tmp)
    print("\n3. a drain of 10000 no-op jobs by 1 process with 4 threads, seen from Redis")
    for kind in ("foodapp", "plain"):
        drain(tmp, kind)


if __name__ == "__main__":
    main()
