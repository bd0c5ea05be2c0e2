"""`foodapp`: the operator's command line, reading the same ini as the web app and workers.

    foodapp [-c production.ini] enqueue comer platano [--delay 30]
    foodapp show <job_id>
    foodapp dead-letters [comer]
    foodapp requeue comer            (every dead letter of the queue goes back to it)
    foodapp stats
    echo 'the password' | foodapp hash-password     (for FOODAPP_DASHBOARD_PASSWORD_HASH)
"""
import argparse
import getpass
import json
import os
import sys

import plaster
import redis

from foodapp import broker as _broker
from foodapp import deadletters, jobs, ops
from foodapp import settings as _settings
from foodapp.broker import EnqueueUnavailable
from foodapp.items import BadItem, check_item
from foodapp.security import hash_password

RET_OK, RET_USAGE, RET_NOT_FOUND, RET_UNAVAILABLE = 0, 2, 3, 4


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
    client = broker.client
    queues = {queue.pop("name"): queue for queue in ops.queues(broker)}
    for field, count in client.hgetall(jobs.STATS).items():
        queue, _, outcome = field.decode().partition(":")
        queues.setdefault(queue, {})[outcome] = int(float(count))
    _print({"queues": queues, "workers": client.zcard(f"{broker.namespace}:__heartbeats__")})
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
    counts.set_defaults(run=stats)
    secret = commands.add_parser("hash-password", help="the value for FOODAPP_DASHBOARD_PASSWORD_HASH")
    secret.set_defaults(run=None)
    _worker_commands(commands)
    return root


# Workers: what the console's Workers page shows (foodapp/processes.py), as JSON.

def list_workers(broker, args):
    """Every worker process from its heartbeat, and this host's supervisord programs (an
    unreachable supervisord is said in "supervisor", the processes are listed all the same)."""
    from foodapp import processes
    from foodapp.supervisors import Supervisor

    _print(processes.overview(broker, Supervisor.from_settings(broker.settings)))
    return RET_OK


def _worker_commands(commands):
    listing = commands.add_parser("workers", help="every worker process: host, pid, queues, busy, done, RSS, CPU, "
                                                  "heartbeat; and this host's supervisord programs")
    listing.set_defaults(run=list_workers)


def main(argv=None):
    args = parser().parse_args(argv)
    if args.command == "hash-password":
        return hash_password_command(args)
    if not os.path.exists(args.config):
        print(f"foodapp: no ini file {args.config}: pass -c <file> or set FOODAPP_INI", file=sys.stderr)
        return RET_USAGE
    try:
        return args.run(_broker_from(args.config), args)
    except (EnqueueUnavailable, redis.RedisError) as error:
        print(f"foodapp: Redis did not answer ({error}); nothing was changed, try again later", file=sys.stderr)
        return RET_UNAVAILABLE
