"""`foodapp`: the operator's command line, reading the same ini as the web app and workers.

    foodapp [-c production.ini] enqueue comer platano [--delay 30]
    foodapp show <job_id>
    foodapp dead-letters [comer]
    foodapp requeue comer            (every dead letter of the queue goes back to it)
    foodapp stats [--watch [--interval 2] [--count N]]
    echo 'the password' | foodapp hash-password     (for FOODAPP_DASHBOARD_PASSWORD_HASH)
    foodapp search [--item X] [--actor A] [--state S] [--queue Q] [--since ISO] [--limit N]
    foodapp cancel <job_id>...        (scheduled, queued or retrying jobs: they never run)
"""
import argparse
import getpass
import json
import os
import sys
import time

import plaster
import redis

from foodapp import broker as _broker
from foodapp import deadletters, jobs, processes, search, series
from foodapp import queues as queue_control
from foodapp import settings as _settings
from foodapp.broker import EnqueueUnavailable
from foodapp.items import BadItem, check_item
from foodapp.queues import describe as describe_queues
from foodapp.security import audit, hash_password
from foodapp.supervisors import Supervisor

RET_OK, RET_USAGE, RET_NOT_FOUND, RET_UNAVAILABLE = 0, 2, 3, 4
#: ``cancel``: a job was not in a state that can be cancelled (running, done...).
RET_REFUSED = 5


def _broker_from(ini):
    return _broker.configure(_settings.from_ini(plaster.get_settings(ini, "app:main")))


def _print(value):
    print(json.dumps(value, ensure_ascii=False, indent=2))


def enqueue(broker, args):
    try:
        item = check_item(args.item, broker.settings.orders_max_item_length)
    except BadItem as error:
        print(f"foodapp: {error}", file=sys.stderr)
        return RET_USAGE
    delay = int(args.delay * 1000) if args.delay else None
    message = broker.get_actor(args.queue).message(item)
    try:
        broker.enqueue(message, delay=delay)
    except EnqueueUnavailable as error:
        if not error.maybe_stored:
            raise
        print(f"foodapp: the outcome is unknown ({error.reason}): job {message.message_id} may run; "
              f"check it with `foodapp show {message.message_id}` before enqueueing it again", file=sys.stderr)
        return RET_UNAVAILABLE
    _print({"job_id": message.message_id, "queue": args.queue, "item": item})
    return RET_OK


def show(broker, args):
    job = broker.jobs.get(args.job_id)
    if job is None:
        print(f"foodapp: no job {args.job_id} (unknown, or its status expired)", file=sys.stderr)
        return RET_NOT_FOUND
    _print(job)
    return RET_OK


def dead_letters(broker, args):
    queues = [args.queue] if args.queue else sorted(broker.queues)
    letters = []
    for queue in queues:
        for _, _, message in deadletters.letters(broker, queue):
            job = broker.jobs.get(message.message_id) or {}
            letters.append({"queue": queue, "job_id": message.message_id, "actor": message.actor_name,
                            "args": list(message.args), "error": job.get("error"), "state": job.get("state")})
    _print(letters)
    return RET_OK


def requeue(broker, args):
    _print({"queue": args.queue, "requeued": deadletters.requeue_all(broker, args.queue)})
    return RET_OK


def stats(broker, args):
    if args.watch or args.count is not None:
        return watch_stats(broker, args)
    client = broker.client
    # Dead letters as "dead_letters": "dead" is the outcome counter (jobs that died), merged below.
    queues = {queue.pop("name"): {**queue, "dead_letters": queue.pop("dead")} for queue in describe_queues(broker)}
    for field, count in client.hgetall(jobs.STATS).items():
        queue, _, outcome = field.decode().partition(":")
        queues.setdefault(queue, {})[outcome] = int(float(count))
    _print({"queues": queues, "workers": client.zcard(f"{broker.namespace}:__heartbeats__")})
    return RET_OK


#: What `stats --watch` shows per queue: counts now, then outcomes per second since the last print.
_WATCH_COUNTS = ("queued", "delayed", "dead")
_WATCH_RATES = ("done", "failed", "dead", "retried")


def _watch_read(broker):
    """(queues' counts by name, outcome counters by queue, workers, the master's CPU
    seconds): two round trips."""
    client = broker.client
    queues = {queue.pop("name"): queue for queue in describe_queues(broker)}
    outcomes = {}
    with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(jobs.STATS)
        pipe.zcard(f"{broker.namespace}:__heartbeats__")
        pipe.info("cpu")
        counters, workers, cpu = pipe.execute()
    for field, count in counters.items():
        queue, _, outcome = field.decode().partition(":")
        outcomes.setdefault(queue, {})[outcome] = int(float(count))
    return queues, outcomes, workers, series.redis_cpu_seconds(cpu)


def _watch_table(read, before, seconds):
    """One print of `stats --watch`: the time, the workers and the share of its one core the
    Redis master used since the previous print (the whole deployment's ceiling:
    docs/production.md), then a row per queue: jobs queued, delayed and dead letters now;
    jobs done, failed, dead and retried per second since the previous print ("-" on the
    first)."""

    queues, outcomes, workers, cpu = read
    share = series.cpu_share(cpu - before[3], seconds) if before is not None else None
    busy = "-" if share is None else f"{share:.1f} %"  # "-": the first print, or another master
    lines = [f"{time.strftime('%Y-%m-%d %H:%M:%S')}  workers {workers}  redis master cpu {busy}",
             f"{'queue':<8}" + "".join(f"{name:>9}" for name in _WATCH_COUNTS)
             + "".join(f"{name + '/s':>11}" for name in _WATCH_RATES)]
    for queue in sorted(queues):
        row = f"{queue:<8}" + "".join(f"{queues[queue].get(name, 0):>9}" for name in _WATCH_COUNTS)
        for outcome in _WATCH_RATES:
            if before is None or seconds <= 0:
                row += f"{'-':>11}"
                continue
            now, was = outcomes.get(queue, {}).get(outcome, 0), before[1].get(queue, {}).get(outcome, 0)
            row += f"{max(now - was, 0) / seconds:>11.2f}"
        lines.append(row)
    return "\n".join(lines) + "\n"


def watch_stats(broker, args):
    """Print the stats every ``--interval`` seconds until Ctrl-C (or ``--count`` prints)."""

    if args.interval < 0.5:
        print(f"foodapp: --interval {args.interval:g} is too short: give 0.5 seconds or more", file=sys.stderr)
        return RET_USAGE
    if args.count is not None and args.count < 1:
        print("foodapp: --count must be 1 or more (or left out: until Ctrl-C)", file=sys.stderr)
        return RET_USAGE
    before, before_at, printed = None, None, 0
    try:
        while args.count is None or printed < args.count:
            if printed:
                time.sleep(args.interval)  # the refresh interval itself, not a wait for something
            printed += 1
            try:
                read, read_at = _watch_read(broker), time.monotonic()
            except redis.RedisError as error:
                print(f"foodapp: Redis did not answer ({error}); trying again in {args.interval:g} s", flush=True)
                continue
            print(_watch_table(read, before, read_at - before_at if before_at else 0), flush=True)
            before, before_at = read, read_at
    except KeyboardInterrupt:
        pass
    return RET_OK


def hash_password_command(args):
    """Print the scrypt hash of a password read from standard input (or asked for)."""
    password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass("Password: ")
    if not password:
        print("foodapp: an empty password would let anybody in; give one", file=sys.stderr)
        return RET_USAGE
    print(hash_password(password))
    return RET_OK


def parser():
    root = argparse.ArgumentParser(prog="foodapp", description="Operate foodapp's queues from the command line.")
    root.add_argument("-c", "--config", default=os.environ.get("FOODAPP_INI", "development.ini"),
                      help="the ini file (default: $FOODAPP_INI or development.ini)")
    commands = root.add_subparsers(dest="command", required=True)
    one = commands.add_parser("enqueue", help="queue one order")
    one.add_argument("queue", choices=["comer", "beber"])
    one.add_argument("item")
    one.add_argument("--delay", type=float, help="seconds before it may run")
    one.set_defaults(run=enqueue)
    job = commands.add_parser("show", help="a job's status and timeline")
    job.add_argument("job_id")
    job.set_defaults(run=show)
    letters = commands.add_parser("dead-letters", help="list the dead-lettered jobs")
    letters.add_argument("queue", nargs="?", choices=["comer", "beber", "batch"])
    letters.set_defaults(run=dead_letters)
    back = commands.add_parser("requeue", help="put every dead letter of a queue back in it")
    back.add_argument("queue", choices=["comer", "beber", "batch"])
    back.set_defaults(run=requeue)
    counts = commands.add_parser("stats", help="queue depths, dead letters and outcomes")
    counts.add_argument("--watch", action="store_true", help="print again every --interval seconds until Ctrl-C")
    counts.add_argument("--interval", type=float, default=2.0, help="seconds between prints (0.5 or more; default 2)")
    counts.add_argument("--count", type=int, help="with --watch: stop after this many prints")
    counts.set_defaults(run=stats)
    secret = commands.add_parser("hash-password", help="the value for FOODAPP_DASHBOARD_PASSWORD_HASH")
    secret.set_defaults(run=None)
    _job_commands(commands)
    _worker_commands(commands)
    _queue_control_commands(commands)
    return root


# Workers: what the console's Workers page shows (foodapp/processes.py), as JSON.

def list_workers(broker, args):
    """Every worker process from its heartbeat, and this host's supervisord programs (an
    unreachable supervisord is said in "supervisor", the processes are listed all the same)."""

    _print(processes.overview(broker, Supervisor.from_settings(broker.settings)))
    return RET_OK


def _worker_commands(commands):
    listing = commands.add_parser("workers", help="every worker process: host, pid, queues, busy, done, RSS, CPU, "
                                                  "heartbeat; and this host's supervisord programs")
    listing.set_defaults(run=list_workers)


# Queue control: pause, resume, purge (foodapp/queues.py), audited as "cli:<os user>".

def _cli_user():
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return f"cli:uid {os.getuid()}"


def pause_queue(broker, args):
    pause = queue_control.pause(broker, args.queue, _cli_user())
    audit(broker.client, _cli_user(), "pause queue", queue=args.queue)
    _print({"queue": args.queue, "paused": pause})
    print(f"foodapp: queue {args.queue} is paused by {pause['by']}: workers take none of its jobs within a second "
          f"(running ones finish); orders are still accepted. `foodapp resume {args.queue}` to go on", file=sys.stderr)
    return RET_OK


def resume_queue(broker, args):
    was = queue_control.resume(broker, args.queue, _cli_user())
    audit(broker.client, _cli_user(), "resume queue", queue=args.queue, was_paused=was is not None)
    _print({"queue": args.queue, "paused": None, "was_paused": was})
    return RET_OK


def purge_queue(broker, args):
    if not args.yes:
        waiting = broker.client.llen(f"{broker.namespace}:{args.queue}")
        print(f"foodapp: purging removes every job waiting in {args.queue} ({waiting} now) and cannot be undone; "
              f"nothing was changed. To purge, add --yes: foodapp purge {args.queue} --yes", file=sys.stderr)
        return RET_USAGE
    count = queue_control.purge(broker, args.queue)
    audit(broker.client, _cli_user(), "purge queue", queue=args.queue, count=count)
    _print({"queue": args.queue, "purged": count, "state": "cancelled",
            "not_purged": "delayed jobs, dead letters, and jobs a worker had already taken"})
    return RET_OK


def _queue_control_commands(commands):
    queue_names = ["comer", "beber", "batch"]
    stop = commands.add_parser("pause", help="workers stop taking a queue's jobs (orders are still accepted)")
    stop.add_argument("queue", choices=queue_names)
    stop.set_defaults(run=pause_queue)
    go = commands.add_parser("resume", help="workers take a paused queue's jobs again, oldest first")
    go.add_argument("queue", choices=queue_names)
    go.set_defaults(run=resume_queue)
    purge = commands.add_parser("purge", help="remove every job waiting in a queue (they become cancelled)")
    purge.add_argument("queue", choices=queue_names)
    purge.add_argument("--yes", action="store_true", help="really purge (without it nothing is changed)")
    purge.set_defaults(run=purge_queue)


# Jobs: search the recent ones, cancel some (foodapp/search.py), as the console does.

def search_jobs(broker, args):
    """One JSON line per job, newest first; a note on stderr when more may match."""

    params = {name: getattr(args, name) for name in ("item", "actor", "state", "queue", "since", "until", "limit", "cursor")
              if getattr(args, name) is not None}
    try:
        query = search.parse_query(params, broker)
    except search.BadQuery as error:
        print(f"foodapp: --{error.field}: {error.message}", file=sys.stderr)
        return RET_USAGE
    found = search.search(broker.client, query)
    for job in found["jobs"]:
        print(json.dumps(job, ensure_ascii=False))
    if found["more"]:
        print(f"foodapp: {found['note'] or 'more jobs match'} (looked at {found['scanned']}; "
              f"the next page: --cursor {found['next_cursor']})", file=sys.stderr)
    return RET_OK


def cancel_jobs(broker, args):
    """Cancel each job (one JSON line each): 0 if all were, else 3 (one unknown) or 5 (refused)."""

    try:
        ids = search.check_ids(args.job_ids, "job_id")
    except search.BadQuery as error:
        print(f"foodapp: {error.message}", file=sys.stderr)
        return RET_USAGE
    outcomes, _ = search.act(broker, "cancel", ids, _cli_user(), bulk=len(ids) > 1)
    for outcome in outcomes:
        print(json.dumps(dict(outcome), ensure_ascii=False))
        if len(ids) == 1:
            audit(broker.client, _cli_user(), "cancel job", job_id=outcome["job_id"],
                  outcome=outcome["state"] if outcome["ok"] else outcome["message"])
    if len(ids) > 1:
        audit(broker.client, _cli_user(), "bulk cancel", count=len(ids), done=sum(o["ok"] for o in outcomes),
              job_ids=ids[:10])
    if all(outcome["ok"] for outcome in outcomes):
        return RET_OK
    return RET_NOT_FOUND if any(outcome["status"] == 404 for outcome in outcomes) else RET_REFUSED


def _job_commands(commands):
    find = commands.add_parser("search", help="recent jobs, newest first, as JSON lines (the console's search)")
    find.add_argument("--item")
    find.add_argument("--actor")
    find.add_argument("--state")
    find.add_argument("--queue")
    find.add_argument("--since", help="ISO 8601 (UTC without a zone) or epoch seconds")
    find.add_argument("--until", help="ISO 8601 (UTC without a zone) or epoch seconds")
    find.add_argument("--limit", help="at most this many (default 50, at most 500)")
    find.add_argument("--cursor", help="go on from an earlier search's next page")
    find.set_defaults(run=search_jobs)
    cancel = commands.add_parser("cancel", help="cancel scheduled, queued or retrying jobs: they never run")
    cancel.add_argument("job_ids", nargs="+", metavar="job_id")
    cancel.set_defaults(run=cancel_jobs)


def main(argv=None):
    args = parser().parse_args(argv)
    if args.command == "hash-password":
        return hash_password_command(args)
    if not os.path.exists(args.config):
        print(f"foodapp: no ini file {args.config}: pass -c <file> or set FOODAPP_INI", file=sys.stderr)
        return RET_USAGE
    try:
        return args.run(_broker_from(args.config), args)
    except BrokenPipeError:
        # The reader went away (`foodapp stats --watch | head`): stop quietly. Python flushes
        # standard output once more at exit: point it at /dev/null first (Python's docs, signal).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return RET_OK
    except (EnqueueUnavailable, redis.RedisError) as error:
        print(f"foodapp: Redis did not answer ({error}); nothing was changed, try again later", file=sys.stderr)
        return RET_UNAVAILABLE
