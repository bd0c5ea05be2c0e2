"""The worker processes, as the console's Workers page and ``foodapp workers`` show them.

Read from what each process's heartbeat writes (foodapp/heartbeat.py): Dramatiq's
``__heartbeats__`` sorted set gives who beat and when, each process's hash says what it is
(host, pid, queues, threads...) and what it is doing (jobs running and done, memory, CPU),
and its ack sets what it holds. One ZRANGE, then one pipeline of 1 + (number of queues)
commands per process: no KEYS, no scan of the jobs, whatever their number.

A process's state:

- ``alive``: it beat within two heartbeat intervals;
- ``late``: it missed a beat or more, but not yet for ``workers.heartbeat_timeout``;
- ``dead``: silent past the timeout: its jobs are given back by the next sweep (which also
  forgets it, so a dead process is seen only until then);
- ``stopped``: it said so when it shut down (score 0); also forgotten at the next sweep.
"""
import socket
import time

from foodapp import jobs

STATES = ("alive", "late", "dead", "stopped")


def state(beat_ms, silent, interval, timeout):
    """A process's state from its last beat (ms, 0: it said it stopped) and its silence (s)."""
    if not beat_ms:
        return "stopped"
    if silent > timeout:
        return "dead"
    if silent > 2 * interval:
        return "late"
    return "alive"


def _number(value, kind, default=None):
    try:
        return kind(value)
    except (TypeError, ValueError):
        return default


def describe(broker, now=None):
    """Every worker process with a heartbeat record, oldest first: what it is, what it does,
    how long it has been silent, and the jobs it holds per queue (``in_flight``)."""
    settings, ns, client = broker.settings, broker.namespace, broker.client
    beats = client.zrange(f"{ns}:__heartbeats__", 0, -1, withscores=True)
    names = sorted(broker.queues | broker.delay_queues)
    with client.pipeline(transaction=False) as pipe:
        for worker_id, _ in beats:
            pipe.hgetall(f"{jobs.WORKER_PREFIX}{worker_id.decode()}")
            for queue in names:
                pipe.scard(f"{ns}:__acks__.{worker_id.decode()}.{queue}")
        replies = pipe.execute()
    now = time.time() if now is None else now
    found, step = [], 1 + len(names)
    for i, (raw_id, beat_ms) in enumerate(beats):
        worker_id = raw_id.decode()
        info = {k.decode(): v.decode() for k, v in replies[i * step].items()}
        held = dict(zip(names, replies[i * step + 1:(i + 1) * step]))
        # A process that said it stopped has score 0: its silence counts from its last beat.
        last = beat_ms / 1000 if beat_ms else _number(info.get("last_seen"), float, 0.0)
        silent = now - last
        started = _number(info.get("started_at"), float)
        found.append({
            "id": worker_id,
            "name": info.get("name", worker_id[:8]),
            "host": info.get("host"),
            "pid": _number(info.get("pid"), int),
            "ppid": _number(info.get("ppid"), int),
            "program": info.get("program") or None,
            # Space-separated, as the operations page has always shown them.
            "queues": info.get("queues", ""),
            "threads": _number(info.get("threads"), int),
            "busy": _number(info.get("busy"), int),
            "done": _number(info.get("done"), int),
            "rss_bytes": _number(info.get("rss_bytes"), int),
            "cpu_percent": _number(info.get("cpu_percent"), float),
            "started_at": jobs.iso(started) if started else None,
            "uptime_seconds": round(now - started, 1) if started else None,
            "last_heartbeat": jobs.iso(last) if last else None,
            "silent_seconds": round(silent, 1),
            "state": state(beat_ms, silent, settings.workers_heartbeat_interval, settings.workers_heartbeat_timeout),
            "in_flight": {queue: count for queue, count in held.items() if count},
        })
    return found


def controllable(programs, groups):
    """The programs of the groups the console may stop and start (supervisor.groups)."""
    return [program for program in programs if program["group"] in groups]


def attach(found, programs, host):
    """Tie each process to the supervisord program running it on this host.

    A process is this supervisord's when it beats from this host and its Dramatiq main
    process (``ppid``), or itself, is the pid supervisord gives the program: the program
    name a heartbeat carries is the same on every host, so it is not enough. Each process
    gains ``control`` (the program to stop or start, or None: another host's, or gone) and
    ``supervisor_state``; each program gains ``beating`` (a live process of it beats).
    """
    by_pid = {program["pid"]: program for program in programs if program["pid"]}
    beating = set()
    for process in found:
        program = None
        if process["host"] == host:
            program = by_pid.get(process["ppid"]) or by_pid.get(process["pid"])
        process["control"] = program["name"] if program else None
        process["supervisor_state"] = program["state"] if program else None
        if program and process["state"] in ("alive", "late"):
            beating.add(program["name"])
    for program in programs:
        program["beating"] = program["name"] in beating
    return found, programs


def overview(broker, supervisor, host=None):
    """What the Workers page, its JSON API and ``foodapp workers`` show: every worker
    process from Redis, and this host's supervisord programs the console may control
    (``supervisor``: a foodapp.supervisors.Supervisor; unreachable, its error is said and
    the processes are listed all the same)."""
    from foodapp.supervisors import SupervisorError

    host = host or socket.gethostname()
    groups = broker.settings.supervisor_groups.split()
    found = describe(broker)
    error, programs = None, []
    try:
        programs = controllable(supervisor.processes(), groups)
    except SupervisorError as failure:
        error = str(failure)
    attach(found, programs, host)
    return {
        "host": host,
        "supervisor": {"url": supervisor.url, "reachable": error is None, "error": error, "groups": groups},
        "processes": found,
        "programs": programs,
    }
