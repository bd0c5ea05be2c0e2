"""Periodic jobs: cron lines in the ini, fired as ordinary Dramatiq jobs, once per tick across hosts.

    periodic.jobs =
        ledger_report = */5 * * * * report
        breakfast     = 0 0 8 * * mon-fri comer ["tostada"]

One schedule a line: ``<name> = <cron> <actor> [json args]``. The cron expression has the
five fields of crontab (minute hour day-of-month month day-of-week, Sunday is 0 or 7, as in
crontab) or six with the seconds first (``*/10 * * * * *``), or is one of @hourly, @daily,
@weekly, @monthly, @yearly. The JSON, if any, is a list of positional arguments or an object
of keyword arguments. Times are in ``periodic.timezone`` (UTC by default).

``foodapp-scheduler`` (one under supervisord on each of hosts A and B) reads the ini, and at
each tick enqueues the actor's message as a job whose id is ``uuid5(name, tick)``: both
hosts' schedulers fire every tick, and the tick makes ONE job.

Why APScheduler 3.x: it is maintained, widely used, and its CronTrigger computes the fire
times (day-of-month/day-of-week rules, time zones, DST) that should not be written again
here; we use it to wake up at the ticks and nothing else (an in-memory job store: the
schedule lives in the ini, the shared state in Redis). periodiq would tie the schedule to
actor decorators (not to the ini), has had few releases in years, and its own answer to two
schedulers is "run only one", which a host failure makes a missed schedule. APScheduler 4
is a rewrite with another API, hence the pin to 3.x (whose day-of-week numbers count from
Monday: the fields are translated so that the ini means what crontab means).

Exactly one job per tick. The claim of a tick and its job are one write: the enqueue script
(foodapp/lua/enqueue.lua) with an idempotency key made from the job id. The first scheduler
to arrive stores the job and its answer (which scheduler fired it); the other gets that
answer back (``Replay``) and stores nothing. The write is replicated like an order
(``enqueue.replicas`` replicas acknowledge it, WAIT, foodapp/durable.py), so after a
Sentinel failover the new master either has the tick (the other scheduler's attempt is a
replay) or never had it (the first write was lost with the old master, and the job with
it: one scheduler's retry, or the other's firing, stores it once on the new master). No
separate lease (SET NX PX) stands in front of it: a scheduler that took a lease and died
before enqueueing would lose the tick; here there is nothing between the claim and the job.
The idempotency key holds a tab, which no client's Idempotency-Key may (printable ASCII,
foodapp/orders.py), so no order can take a tick's key.

Which tick a firing is for: the schedule's latest fire time at or before the moment the
firing runs. Both hosts compute the same tick as long as their clocks agree to well under
the shortest interval between ticks (NTP). A firing that runs late (a busy machine) is
still its own tick; one that runs past the next tick is that next tick.

Misfires. The scheduler keeps no record of its own: when none runs at a tick, the tick is
not fired by anyone, with one exception: a scheduler that starts within
``periodic.misfire_grace_seconds`` of a tick it missed fires that tick (only the latest one:
APScheduler's ``coalesce``; an already fired tick is a replay, so a restart never doubles
one). Ticks missed by longer are skipped (APScheduler's ``misfire_grace_time``), and a
scheduler that was stopped (SIGSTOP, a frozen VM) for many ticks fires one, the latest, when
it wakes: never a burst of catch-up firings. A tick whose enqueue Redis refuses (down, no
master) is tried again until the next tick is due (and at most the grace), then given up
and logged. With both hosts up, one host's scheduler being down loses nothing.

Records, in the hash ``foodapp:periodic`` (expires ``jobs.status_ttl`` after the last
write): ``last:<name>`` (the tick, job id, who fired it and when: written by the scheduler
that stored the job, or by the console's "run now") and ``next:<name>`` (the next tick, as
the schedulers compute it). ``foodapp:periodic:schedulers``: each scheduler's heartbeat
(host:pid, when, how many ticks it fired and how many the other host had fired first).
Reads are HMGET of the configured names and HGETALL of the live schedulers: bounded.
"""
import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import redis
from apscheduler.triggers.cron import CronTrigger

log = logging.getLogger(__name__)

PERIODIC = "foodapp:periodic"
SCHEDULERS = "foodapp:periodic:schedulers"
#: The namespace of the tick job ids: uuid5(NAMESPACE, "<name>@<tick, ISO 8601 UTC>").
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "foodapp:periodic")
#: How often a scheduler writes its heartbeat (s), and after how long without one it is gone.
BEAT_SECONDS = 5
SCHEDULER_GONE_SECONDS = 3 * BEAT_SECONDS
#: A scheduler's heartbeat field is removed an hour after its last beat (restarts make new ones).
SCHEDULER_FORGET_SECONDS = 3600

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
# crontab's day-of-week numbers (0 and 7 are Sunday) as APScheduler 3's names.
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class BadSchedule(ValueError):
    """A line of periodic.jobs foodapp cannot use; the message names the line."""


@dataclass(frozen=True)
class Schedule:
    """One line of periodic.jobs."""

    name: str
    cron: str          # as written in the ini
    actor: str
    args: tuple
    kwargs_json: str   # a JSON object ("{}" for none): a dict would make Settings unhashable
    line: str
    number: int        # the line's number among the schedule lines, from 1

    @property
    def kwargs(self):
        return json.loads(self.kwargs_json)

    def trigger(self, tz):
        return cron_trigger(self.cron, tz)

    def where(self):
        return f"line {self.number} ({self.line!r})"


def _day_of_week(field):
    """A crontab day-of-week field in APScheduler 3's terms (names: it counts from Monday)."""
    if field in ("*", "?"):
        return "*"
    days = set()
    for part in field.lower().split(","):
        spec, _, step = part.partition("/")
        if step and not step.isdigit():
            raise ValueError(f"day-of-week step {step!r} is not a number")
        step = int(step) if step else 1
        if step < 1:
            raise ValueError("a step must be at least 1")
        if spec == "*":
            first, last = 0, 6
        else:
            low, dash, high = spec.partition("-")
            first = _day_number(low)
            last = _day_number(high) if dash else (6 if step > 1 else first)
            if last == 0 and dash:
                last = 7  # "5-0" / "5-7": Friday to Sunday
            if last < first:
                raise ValueError(f"day-of-week range {spec!r} runs backwards")
        days.update(day % 7 for day in range(first, last + 1, step))
    return ",".join(DAYS[day] for day in sorted(days))


def _day_number(text):
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text)
    if text[:3] in DAYS and len(text) == 3:
        return DAYS.index(text)
    raise ValueError(f"day of week {text!r} is not 0-7 (0 and 7 are Sunday) or sun..sat")


def cron_trigger(expression, tz):
    """APScheduler's CronTrigger for a crontab expression (5 fields, 6 with seconds first, or
    a @macro), with crontab's day-of-week meaning. ValueError says what is wrong."""
    expression = MACROS.get(expression.strip().lower(), expression.strip())
    if expression.startswith("@"):
        raise ValueError(f"{expression} is not one of {', '.join(sorted(MACROS))}")
    fields = expression.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    elif len(fields) != 6:
        raise ValueError(f"the cron expression {expression!r} has {len(fields)} fields; give 5 (minute hour "
                         "day-of-month month day-of-week, e.g. */5 * * * *) or 6 with the seconds first "
                         "(e.g. */10 * * * * *)")
    names = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
    values = dict(zip(("second", "minute", "hour", "day", "month", "day_of_week"), fields))
    values["day"] = values["day"].replace("?", "*")
    try:
        values["day_of_week"] = _day_of_week(values["day_of_week"])
    except ValueError as error:
        raise ValueError(f"the cron expression {expression!r} is not valid: the day-of-week field: {error}") from None
    try:
        return CronTrigger(**values, timezone=tz)
    except ValueError as error:
        # Name the field: APScheduler's message quotes the value only.
        for (key, value), label in zip(values.items(), names):
            try:
                CronTrigger(**{key: value}, timezone=tz)
            except ValueError as field_error:
                error = f"the {label} field {fields[names.index(label)]!r}: {field_error}"
                break
        raise ValueError(f"the cron expression {expression!r} is not valid: {error}") from None


def parse_line(line, number):
    """A Schedule from ``<name> = <cron> <actor> [json args]``; BadSchedule names the line."""
    where = f"line {number} ({line!r})"
    name, equals, rest = line.partition("=")
    name, rest = name.strip(), rest.strip()
    if not equals or not name:
        raise BadSchedule(f"{where}: write it as <name> = <cron> <actor> [json args], e.g. "
                          "ledger_report = */5 * * * * report")
    if not NAME.match(name):
        raise BadSchedule(f"{where}: the name {name!r} must be 1 to 64 letters, digits, _ . or -")
    json_at = re.search(r"(^|\s)[\[{]", rest)
    head, args_text = (rest[:json_at.start()], rest[json_at.start():].strip()) if json_at else (rest, "")
    words = head.split()
    if len(words) < 2:
        raise BadSchedule(f"{where}: a cron expression and an actor are needed after {name} =, e.g. "
                          "*/5 * * * * report")
    actor, cron = words[-1], " ".join(words[:-1])
    if not actor.isidentifier():
        raise BadSchedule(f"{where}: the last word before the arguments must be the actor's name, got {actor!r}")
    try:
        cron_trigger(cron, timezone.utc)
    except ValueError as error:
        raise BadSchedule(f"{where}: {error}") from None
    args, kwargs = (), {}
    if args_text:
        try:
            value = json.loads(args_text)
        except ValueError as error:
            raise BadSchedule(f"{where}: the arguments are not valid JSON ({error}); give a JSON list, "
                              'e.g. ["tostada"], or a JSON object of keyword arguments') from None
        if isinstance(value, list):
            args = tuple(value)
        elif isinstance(value, dict):
            kwargs = value
        else:
            raise BadSchedule(f"{where}: the arguments must be a JSON list or object, got {args_text!r}")
    return Schedule(name=name, cron=cron, actor=actor, args=args, kwargs_json=json.dumps(kwargs, sort_keys=True),
                    line=line, number=number)


def parse_jobs(text):
    """The schedules of a periodic.jobs value, one a line (blank and # lines skipped)."""
    schedules, names = [], set()
    lines = [line.strip() for line in str(text).splitlines()]
    for line in (line for line in lines if line and not line.startswith(("#", ";"))):
        schedule = parse_line(line, len(schedules) + 1)
        if schedule.name in names:
            raise BadSchedule(f"{schedule.where()}: the name {schedule.name!r} is used by an earlier line; "
                              "each schedule needs its own name (it makes the job ids)")
        names.add(schedule.name)
        schedules.append(schedule)
    return tuple(schedules)


def check_actors(schedules, broker):
    """Refuse schedules whose actor is not declared, or does not take their arguments."""
    import inspect

    from foodapp.settings import SettingsError

    for schedule in schedules:
        actor = broker.actors.get(schedule.actor)
        if actor is None:
            raise SettingsError(f"setting periodic.jobs, {schedule.where()}: there is no actor {schedule.actor!r}; "
                                f"the actors are {', '.join(sorted(broker.actors))}")
        try:
            inspect.signature(actor.fn).bind(*schedule.args, **schedule.kwargs)
        except TypeError as error:
            raise SettingsError(f"setting periodic.jobs, {schedule.where()}: the actor {schedule.actor} cannot take "
                                f"these arguments ({error}); its signature is {schedule.actor}"
                                f"{inspect.signature(actor.fn)}") from None


def tick_job_id(name, tick):
    """The job id of schedule ``name``'s tick at ``tick`` (an aware datetime): the same on every host."""
    moment = tick.astimezone(timezone.utc).replace(microsecond=0)
    return str(uuid.uuid5(NAMESPACE, f"{name}@{moment.isoformat()}"))


def latest_tick(trigger, now, lookback):
    """The trigger's latest fire time at or before ``now``, looking back at most ``lookback`` s."""
    tick = None
    candidate = trigger.get_next_fire_time(None, now - timedelta(seconds=lookback + 1))
    # Bounded: fire times are whole seconds apart at the least.
    for _ in range(int(lookback) + 3):
        if candidate is None or candidate > now:
            break
        tick = candidate
        candidate = trigger.get_next_fire_time(tick, tick + timedelta(seconds=1))
    return tick


def _epoch(moment):
    return f"{moment.timestamp():.3f}"


def _message(broker, schedule, job_id):
    actor = broker.get_actor(schedule.actor)
    return actor.message(*schedule.args, **schedule.kwargs).copy(message_id=job_id)


def _idempotency(job_id, answer, ttl):
    # The tab keeps the key out of reach of any client's Idempotency-Key (see the docstring).
    return f"periodic\t{job_id}", job_id, json.dumps(answer), ttl


def record_last(client, settings, name, record):
    """Write ``last:<name>`` unless a later tick is recorded already (two schedulers that
    fired consecutive ticks may write out of order). Not atomic (the app's Redis user has no
    WATCH): a read, then a write; the record is for people, the job ids are what counts."""
    field = f"last:{name}"
    current = client.hget(PERIODIC, field)
    if current:
        try:
            if float(json.loads(current).get("tick_epoch", 0)) > float(record["tick_epoch"]):
                return
        except (ValueError, TypeError, AttributeError):
            pass
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(PERIODIC, field, json.dumps(record))
        pipe.expire(PERIODIC, settings.jobs_status_ttl)
        pipe.execute()


def record_next(client, settings, name, moment):
    with client.pipeline(transaction=False) as pipe:
        pipe.hset(PERIODIC, f"next:{name}", _epoch(moment) if moment else "")
        pipe.expire(PERIODIC, settings.jobs_status_ttl)
        pipe.execute()


def fire(broker, schedule, tick, fired_by, give_up_at, clock=time.monotonic, stopping=None):
    """Enqueue ``schedule``'s job for ``tick`` unless a scheduler did already.

    Returns the tick's record ({"job_id", "tick", "fired_by", ...}) and whether this call
    stored the job (False: another scheduler had; True also when an earlier attempt of this
    scheduler had stored it and its reply was lost). None if Redis did not take it by
    ``give_up_at`` (a ``clock()`` value) or ``stopping`` (an Event) is set.
    """
    from foodapp.broker import EnqueueUnavailable, IdempotencyConflict, Replay

    settings = broker.settings
    job_id = tick_job_id(schedule.name, tick)
    record = {"schedule": schedule.name, "tick": tick.astimezone(timezone.utc).isoformat(), "tick_epoch": _epoch(tick),
              "job_id": job_id, "actor": schedule.actor, "fired_by": fired_by, "fired_at": f"{time.time():.3f}",
              "manual": False}
    message = _message(broker, schedule, job_id)
    idempotency = _idempotency(job_id, record, max(settings.orders_idempotency_ttl, settings.periodic_misfire_grace_seconds * 2))
    pause = 0.05
    while True:
        try:
            broker.enqueue_many([(message, None)], idempotency=idempotency)
            return record, True
        except Replay as replay:
            first = json.loads(replay.answer)
            return first, first.get("fired_by") == fired_by
        except IdempotencyConflict:  # only another version of foodapp could have written the key
            log.error("periodic %s: tick %s: its key is held by something else; not fired", schedule.name, record["tick"])
            return None
        except EnqueueUnavailable as error:
            if error.replayed:
                first = json.loads(error.replayed)
                return first, first.get("fired_by") == fired_by
            if clock() + pause > give_up_at or (stopping is not None and stopping.is_set()):
                log.error("periodic %s: tick %s (job %s) not fired: %s%s", schedule.name, record["tick"], job_id,
                          error.reason, "; it may have been stored on a master no replica confirmed"
                          if error.maybe_stored else "")
                return None
            log.warning("periodic %s: tick %s: Redis did not take job %s (%s); trying again",
                        schedule.name, record["tick"], job_id, error.reason)
            # A backoff between attempts against a Redis failing over, not a wait for a condition.
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def run_now(broker, schedule, by, key=None):
    """Enqueue ``schedule``'s job now, outside its ticks (the console's "run now"): a job id of
    its own; with ``key`` (the request's Idempotency-Key) a repeated request makes no second job."""
    from foodapp.broker import Replay

    job_id = str(uuid.uuid4())
    now = datetime.now(timezone.utc)
    record = {"schedule": schedule.name, "tick": now.isoformat(), "tick_epoch": _epoch(now), "job_id": job_id,
              "actor": schedule.actor, "fired_by": by, "fired_at": f"{time.time():.3f}", "manual": True}
    idempotency = None
    if key:
        idempotency = (f"periodic\trun\t{schedule.name}\t{key}", schedule.name, json.dumps(record),
                       broker.settings.orders_idempotency_ttl)
    try:
        broker.enqueue_many([(_message(broker, schedule, job_id), None)], idempotency=idempotency)
    except Replay as replay:
        return json.loads(replay.answer), False
    try:
        record_last(broker.client, broker.settings, schedule.name, record)
    except redis.RedisError as error:
        # The job is stored: answered as such; only the console's "last run" lags.
        log.warning("periodic job %s: job %s queued, but its last run was not recorded: %s",
                    schedule.name, job_id, error)
    return record, True


def _text(value):
    return value.decode() if isinstance(value, bytes) else value


def overview(broker, settings, now=None):
    """What the console shows: each schedule with its next and last run (and that job's
    state), and the schedulers seen. Bounded reads: HMGET of the schedules, HGETALL of the
    schedulers' heartbeats, one status hash per schedule."""
    now = now or time.time()
    tz = ZoneInfo(settings.periodic_timezone)
    schedules = settings.periodic_jobs
    fields = [f"{kind}:{s.name}" for s in schedules for kind in ("last", "next")]
    with broker.client.pipeline(transaction=False) as pipe:
        pipe.hmget(PERIODIC, fields) if fields else pipe.ping()
        pipe.hgetall(SCHEDULERS)
        values, beats = pipe.execute()
    values = values if fields else []
    schedulers = []
    for identity, beat in sorted(beats.items()):
        try:
            beat = json.loads(beat)
        except ValueError:
            continue
        age = now - float(beat.get("at", 0))
        if age > SCHEDULER_FORGET_SECONDS:
            continue
        schedulers.append({**beat, "name": _text(identity), "seen_seconds_ago": round(max(age, 0.0), 1),
                           "alive": age <= SCHEDULER_GONE_SECONDS})
    rows = []
    for index, schedule in enumerate(schedules):
        last_raw, next_raw = values[2 * index], values[2 * index + 1]
        last = json.loads(last_raw) if last_raw else None
        if last:
            job = broker.jobs.get(last["job_id"])
            last["state"] = job["state"] if job else "expired"
            last["status_url"] = f"/api/jobs/{last['job_id']}"
        recorded_next = float(_text(next_raw)) if next_raw and _text(next_raw) else None
        if recorded_next and recorded_next >= now - 1:
            next_run, next_source = recorded_next, "scheduler"
        else:
            moment = schedule.trigger(tz).get_next_fire_time(None, datetime.fromtimestamp(now, tz))
            next_run, next_source = (moment.timestamp() if moment else None), "computed"
        rows.append({
            "name": schedule.name, "cron": schedule.cron, "actor": schedule.actor,
            "args": list(schedule.args), "kwargs": schedule.kwargs,
            "queue": broker.get_actor(schedule.actor).queue_name if schedule.actor in broker.actors else None,
            "next_run": next_run, "next_run_at": iso_utc(next_run), "next_run_source": next_source,
            "last_run": last,
        })
    alive = [s for s in schedulers if s["alive"]]
    return {
        "timezone": settings.periodic_timezone,
        "misfire_grace_seconds": settings.periodic_misfire_grace_seconds,
        "now": round(now, 3),
        "schedules": rows,
        "schedulers": schedulers,
        "warning": None if alive or not schedules else
        "no scheduler is running: nothing fires. Start foodapp-scheduler (supervisorctl start scheduler) on host A or B",
    }


def iso_utc(epoch):
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class Scheduler:
    """APScheduler (a background thread) waking at each schedule's ticks, firing them (see
    the module docstring), and a heartbeat."""

    def __init__(self, broker, settings, identity=None):
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        self.broker, self.settings = broker, settings
        self.identity = identity or broker.worker_name
        self.tz = ZoneInfo(settings.periodic_timezone)
        self.schedules = {schedule.name: schedule for schedule in settings.periodic_jobs}
        self.triggers = {name: schedule.trigger(self.tz) for name, schedule in self.schedules.items()}
        self.counts = {"fired": 0, "replayed": 0, "failed": 0}
        self.lock = threading.Lock()
        self.started_at = time.time()
        self.stopping = threading.Event()
        grace = settings.periodic_misfire_grace_seconds
        # APScheduler's executor logs two INFO lines per run (the heartbeat's every 5 s
        # included); "fired tick" lines say what matters. Unless the ini sets its level.
        executors_log = logging.getLogger("apscheduler.executors")
        if executors_log.level == logging.NOTSET:
            executors_log.setLevel(logging.WARNING)
        self.scheduler = BackgroundScheduler(
            timezone=self.tz,
            executors={"default": ThreadPoolExecutor(max_workers=max(4, 2 * len(self.schedules) + 1))},
            # coalesce: ticks run past (a frozen process) fire once, the latest; max_instances
            # 2: a tick still trying through a failover does not make the next one skipped.
            job_defaults={"coalesce": True, "max_instances": 2, "misfire_grace_time": grace},
        )

    def start(self):
        now = datetime.now(self.tz)
        grace = self.settings.periodic_misfire_grace_seconds
        for name, trigger in self.triggers.items():
            # From the first tick within the grace: a tick missed just before this start fires
            # (the latest one only: coalesce), one already fired is a replay.
            first = trigger.get_next_fire_time(None, now - timedelta(seconds=grace))
            self.scheduler.add_job(self.fire, trigger, args=[name], id=f"periodic:{name}", name=f"periodic {name}",
                                   next_run_time=first)
        self.scheduler.add_job(self.beat, "interval", seconds=BEAT_SECONDS, id="beat", name="scheduler heartbeat",
                               next_run_time=now, misfire_grace_time=None)
        self.scheduler.start()
        if self.schedules:
            log.info("scheduler %s: %d periodic job(s): %s (times in %s)", self.identity, len(self.schedules),
                     "; ".join(f"{s.name} = {s.cron} {s.actor}" for s in self.schedules.values()),
                     self.settings.periodic_timezone)
        else:
            log.info("scheduler %s: no periodic jobs in periodic.jobs; nothing to fire", self.identity)
        return self

    def stop(self):
        self.stopping.set()  # a tick still trying through a Redis outage gives up
        self.scheduler.shutdown(wait=True)
        try:
            self.broker.client.hdel(SCHEDULERS, self.identity)
        except Exception as error:  # stopping anyway; the field is forgotten after an hour
            log.warning("scheduler %s: could not remove its heartbeat: %s", self.identity, error)

    def fire(self, name):
        schedule, trigger = self.schedules[name], self.triggers[name]
        now = datetime.now(self.tz)
        grace = self.settings.periodic_misfire_grace_seconds
        tick = latest_tick(trigger, now, grace)
        if tick is None:
            return
        following = trigger.get_next_fire_time(tick, tick + timedelta(seconds=1))
        budget = grace - (now - tick).total_seconds()
        if following is not None:
            budget = min(budget, (following - now).total_seconds())
        try:
            outcome = fire(self.broker, schedule, tick, self.identity, time.monotonic() + max(budget, 0.1),
                           stopping=self.stopping)
            if outcome is None:
                self._count("failed")
                return
            record, ours = outcome
            self._count("fired" if ours else "replayed")
            if ours:
                log.info("periodic %s: fired tick %s as job %s", name, record["tick"], record["job_id"])
                record_last(self.broker.client, self.settings, name, record)
            else:
                log.debug("periodic %s: tick %s was fired by %s", name, record["tick"], record.get("fired_by"))
            record_next(self.broker.client, self.settings, name, following)
        except Exception:
            self._count("failed")
            log.exception("periodic %s: tick %s failed", name, tick.isoformat())
        # The console's counts of this scheduler, fresh after each tick (not only every 5 s).
        self.beat()

    def _count(self, what):
        with self.lock:
            self.counts[what] += 1

    def beat(self):
        """The heartbeat (the console lists the schedulers alive) and every schedule's next tick."""
        now = time.time()
        with self.lock:
            counts = dict(self.counts)
        beat = {"at": f"{now:.3f}", "host": self.identity.rpartition(":")[0], "pid": os.getpid(),
                "started_at": f"{self.started_at:.3f}", "schedules": sorted(self.schedules), **counts}
        client = self.broker.client
        try:
            with client.pipeline(transaction=False) as pipe:
                pipe.hset(SCHEDULERS, self.identity, json.dumps(beat))
                pipe.expire(SCHEDULERS, SCHEDULER_FORGET_SECONDS)
                for name in self.schedules:
                    job = self.scheduler.get_job(f"periodic:{name}")
                    if job is not None and job.next_run_time is not None:
                        pipe.hset(PERIODIC, f"next:{name}", _epoch(job.next_run_time))
                if self.schedules:
                    pipe.expire(PERIODIC, self.settings.jobs_status_ttl)
                pipe.hgetall(SCHEDULERS)
                others = pipe.execute()[-1]
            # Forget schedulers silent for an hour (each restart is a new host:pid).
            gone = [identity for identity, value in others.items()
                    if now - float(json.loads(value).get("at", 0)) > SCHEDULER_FORGET_SECONDS]
            if gone:
                client.hdel(SCHEDULERS, *gone)
        except Exception as error:  # a failover: the next beat writes it
            log.warning("scheduler %s: heartbeat not written: %s", self.identity, error)


def main(argv=None):
    """``foodapp-scheduler [-c production.ini]``: run the periodic jobs until SIGTERM or SIGINT."""
    from foodapp import broker as _broker
    from foodapp.settings import SettingsError, load_for_process

    parser = argparse.ArgumentParser(prog="foodapp-scheduler", description=main.__doc__.split(":", 1)[1].strip())
    parser.add_argument("-c", "--config", default=os.environ.get("FOODAPP_INI", "development.ini"),
                        help="the ini file (default: $FOODAPP_INI, else development.ini)")
    args = parser.parse_args(argv)
    try:
        settings = load_for_process(args.config)
        broker = _broker.configure(settings)
        check_actors(settings.periodic_jobs, broker)
    except (SettingsError, FileNotFoundError) as error:
        print(f"foodapp-scheduler: {error}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def stopping(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    scheduler = Scheduler(broker, settings).start()
    # Bounded waits, so the process keeps noticing signals.
    while not stop.wait(1.0):
        pass
    log.info("scheduler %s: stopping", scheduler.identity)
    scheduler.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
