"""Periodic jobs (foodapp/periodic.py): the schedule lines are checked at startup with an
error naming the line; two real `foodapp-scheduler` processes against one real Redis make
exactly one job per tick, and one keeps firing when the other is killed -9; a Sentinel
failover during the firing doubles no tick; the console shows next and last runs.

Every-second schedules (six cron fields, seconds first) so that a test sees many ticks in a
few seconds. A job's status record keeps one ``stored:<redis message id>`` field for each
time a message of that job id was stored (foodapp/lua/enqueue.lua): the count of those
fields is the count of jobs made for a tick.
"""
import json
import os
import re
import subprocess
import time
from datetime import datetime, timezone

import plaster
import pytest

from foodapp import periodic
from foodapp.jobs import status_key
from foodapp.settings import SettingsError, from_ini
from tests.conftest import make_app
from tests.runs import read_runs
from tests.sentinel import running
from tests.servers import BIN, TESTING_INI, Process, Worker, wait_until

EVERY_SECOND = 'tick = * * * * * * comer ["pan"]'


def settings_with(jobs, **environ):
    return from_ini(plaster.get_settings(str(TESTING_INI), "app:main"), environ={"FOODAPP_PERIODIC_JOBS": jobs, **environ})


# --- the schedule lines ------------------------------------------------------------------

@pytest.mark.parametrize("line, says", [
    ("ledger_report */5 * * * * report", "write it as <name> = <cron> <actor>"),
    ("r = * * * * report", "has 4 fields; give 5"),
    ("r = 61 * * * * report", "not valid: the minute field '61': "),
    ("r = * * 32 * * report", "the day-of-month field '32'"),
    ("r = * * * * 8 report", "day of week '8' is not 0-7"),
    ("r = @fortnightly report", "@fortnightly is not one of"),
    ("r = */5 * * * *", "the last word before the arguments must be the actor's name, got '*'"),
    ('r = * * * * * comer ["pan"', "the arguments are not valid JSON"),
    ('r = * * * * * comer "pan"', "the last word before the arguments must be the actor's name"),
    ("r r = * * * * * report", "the name 'r r' must be"),
])
def test_a_bad_line_is_refused_naming_the_line_and_what_is_wrong(line, says):
    with pytest.raises(SettingsError) as refused:
        settings_with(f"good = */5 * * * * report\n{line}")
    message = str(refused.value)
    assert message.startswith("setting periodic.jobs (from the environment variable FOODAPP_PERIODIC_JOBS), line 2 ")
    assert repr(line) in message and says in message, message


def test_two_schedules_may_not_share_a_name():
    with pytest.raises(SettingsError, match=r"line 2 .*the name 'r' is used by an earlier line"):
        settings_with("r = */5 * * * * report\nr = @hourly report")


def test_lines_are_parsed_with_crontab_meanings():
    settings = settings_with("\n".join([
        "# a comment, and a blank line, are skipped", "",
        "report_5min = */5 * * * * report",
        'breakfast = 0 0 8 * * mon-fri comer ["tostada"]',
        "hourly = @hourly report",
        "sundays = 0 9 * * 0 report",
        'named = 30 7 * * 7 beber {"drink": "cafe"}',
    ]))
    schedules = {s.name: s for s in settings.periodic_jobs}
    assert list(schedules) == ["report_5min", "breakfast", "hourly", "sundays", "named"]
    assert schedules["breakfast"].args == ("tostada",) and schedules["breakfast"].actor == "comer"
    assert schedules["named"].kwargs == {"drink": "cafe"}

    def next_fire(name, after):
        return schedules[name].trigger(timezone.utc).get_next_fire_time(None, after)

    monday = datetime(2026, 11, 23, 8, 0, 1, tzinfo=timezone.utc)  # a Monday
    assert next_fire("report_5min", monday) == datetime(2026, 11, 23, 8, 5, tzinfo=timezone.utc)
    # Day-of-week numbers as crontab has them (0 and 7 are Sunday), not APScheduler 3's.
    assert next_fire("sundays", monday).strftime("%A %H:%M") == "Sunday 09:00"
    assert next_fire("named", monday).strftime("%A %H:%M") == "Sunday 07:30"
    assert next_fire("breakfast", datetime(2026, 11, 28, 12, tzinfo=timezone.utc)).strftime("%A %H:%M:%S") == "Monday 08:00:00"
    assert next_fire("hourly", monday) == datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


def test_the_example_schedules_of_development_and_production_parse():
    for ini in ("development.ini", "production.ini"):
        raw = plaster.get_settings(str(TESTING_INI.parent / ini), "app:main")
        settings = from_ini({**raw, "security.require_passwords": "false"}, environ={})
        assert [s.actor for s in settings.periodic_jobs] == ["report"], ini
    assert from_ini(plaster.get_settings(str(TESTING_INI), "app:main"), environ={}).periodic_jobs == ()


def test_an_unknown_actor_or_wrong_arguments_stop_the_web_app_at_startup(redis_server, monkeypatch):
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    monkeypatch.setenv("FOODAPP_PERIODIC_JOBS", "ok = @daily report\ncena = 0 21 * * * cenar")
    with pytest.raises(SettingsError, match=r"line 2 \('cena = 0 21 \* \* \* cenar'\): there is no actor 'cenar'; "
                                            r"the actors are .*beber.*comer.*report"):
        make_app()
    monkeypatch.setenv("FOODAPP_PERIODIC_JOBS", 'r = @daily report ["too", "many"]')
    with pytest.raises(SettingsError, match=r"line 1 .*the actor report cannot take these arguments"):
        make_app()


def test_the_scheduler_refuses_a_bad_line_at_startup_with_a_message(redis_server):
    result = subprocess.run(
        [BIN / "foodapp-scheduler", "-c", TESTING_INI], capture_output=True, text=True, timeout=60,
        env={**os.environ, "FOODAPP_REDIS_URL": redis_server.url, "FOODAPP_PERIODIC_JOBS": "r = * * * * * nosuch"},
    )
    assert result.returncode == 2, result.stderr
    assert "foodapp-scheduler: setting periodic.jobs" in result.stderr and "there is no actor 'nosuch'" in result.stderr
    assert "Traceback" not in result.stderr


def test_tick_job_ids_are_the_same_on_every_host_and_differ_per_tick_and_schedule():
    tick = datetime(2026, 11, 23, 8, 5, tzinfo=timezone.utc)
    assert periodic.tick_job_id("a", tick) == periodic.tick_job_id("a", tick.astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Madrid")))
    assert len({periodic.tick_job_id("a", tick), periodic.tick_job_id("b", tick),
                periodic.tick_job_id("a", tick.replace(minute=10))}) == 3


# --- real schedulers ----------------------------------------------------------------------

class Scheduler(Process):
    """The real `foodapp-scheduler` command."""

    def __init__(self, directory, name, jobs=EVERY_SECOND, redis_url=None, env=None):
        self.name = name
        super().__init__([BIN / "foodapp-scheduler", "-c", TESTING_INI], f"{directory}/scheduler-{name}.log",
                         env={**({"FOODAPP_REDIS_URL": redis_url} if redis_url else {}),
                              "FOODAPP_PERIODIC_JOBS": jobs, **(env or {})})

    def identity(self):
        import socket
        return f"{socket.gethostname()}:{self.pid}"

    def wait_beating(self, client, timeout=30):
        def beating():
            assert self.alive(), self.output()
            return client.hget(periodic.SCHEDULERS, self.identity())
        wait_until(beating, timeout, f"scheduler {self.name}'s first heartbeat")
        return self


def ticks(first, last):
    """Job ids of schedule 'tick' for the whole seconds first..last (epoch), in order."""
    return {second: periodic.tick_job_id("tick", datetime.fromtimestamp(second, timezone.utc))
            for second in range(first, last + 1)}


def stored(client, job_id):
    """How many times a message of ``job_id`` was stored (see the module docstring)."""
    return sum(1 for field in client.hkeys(status_key(job_id)) if str(field).startswith("stored:"))


def fired_by(client, job_id):
    """Which scheduler stored the tick's job: the answer kept with its idempotency key."""
    raw = client.get(f"foodapp:idempotency:periodic\t{job_id}")
    return json.loads(raw.partition("\n")[2])["fired_by"] if raw else None


def wait_fired(client, window, timeout=60, what="every tick of the window to be fired"):
    wait_until(lambda: all(client.exists(status_key(job_id)) for job_id in window.values()), timeout, what, interval=0.2)


def test_two_schedulers_make_one_job_per_tick_and_one_keeps_firing_when_the_other_is_killed(
        tmp_path, redis_server, redis_client):
    worker = Worker(tmp_path, redis_server.url, queues=("comer",), threads=2).start()
    a = Scheduler(tmp_path, "a", redis_url=redis_server.url).start()
    b = Scheduler(tmp_path, "b", redis_url=redis_server.url).start()
    try:
        a.wait_beating(redis_client)
        b.wait_beating(redis_client)
        # Both up: 8 ticks from the next whole second on.
        both_from = int(time.time()) + 2
        both = ticks(both_from, both_from + 7)
        wait_fired(redis_client, both)
        assert {second: stored(redis_client, job_id) for second, job_id in both.items()} == dict.fromkeys(both, 1)

        # Both raced for the ticks: each scheduler's heartbeat counts the ticks it found fired
        # by the other; over 8 ticks at least one was a replay.
        def raced():
            beats = [json.loads(redis_client.hget(periodic.SCHEDULERS, s.identity())) for s in (a, b)]
            return sum(beat["replayed"] for beat in beats) > 0 and beats
        beats = wait_until(raced, 30, "a heartbeat counting a tick the other scheduler had fired")
        print(f"\nboth up, 8 ticks: fired by a {sum(fired_by(redis_client, j) == a.identity() for j in both.values())}, "
              f"by b {sum(fired_by(redis_client, j) == b.identity() for j in both.values())}; heartbeats {beats}")

        # kill -9 one of them: the other fires every tick on its own.
        a.kill()
        alone_from = int(time.time()) + 1
        alone = ticks(alone_from, alone_from + 7)
        wait_fired(redis_client, alone)
        assert {second: stored(redis_client, job_id) for second, job_id in alone.items()} == dict.fromkeys(alone, 1)
        assert {fired_by(redis_client, job_id) for job_id in alone.values()} == {b.identity()}

        # Over the whole run, from the first tick either fired to the last: never a tick twice.
        everything = ticks(both_from - 5, alone_from + 7)
        assert max(stored(redis_client, job_id) for job_id in everything.values()) == 1

        # The real worker ran each of those jobs once.
        jobs = [*both.values(), *alone.values()]
        wait_until(lambda: all(redis_client.hget(status_key(j), "state") == "done" for j in jobs), 60,
                   "the worker to run every tick's job")
        runs = read_runs(redis_client, jobs)
        assert {job_id: len(runs[job_id]) for job_id in jobs} == dict.fromkeys(jobs, 1)
        assert json.loads(redis_client.hget(status_key(jobs[0]), "args")) == ["pan"]

        # last run and next run per schedule, in foodapp:periodic.
        last = json.loads(redis_client.hget(periodic.PERIODIC, "last:tick"))
        assert last["fired_by"] == b.identity() and last["tick_epoch"] >= f"{alone_from + 7}"
        assert float(redis_client.hget(periodic.PERIODIC, "next:tick")) > alone_from + 7
        assert redis_client.ttl(periodic.PERIODIC) > 0 and redis_client.ttl(periodic.SCHEDULERS) > 0
    finally:
        for process in (a, b):
            process.stop()
        worker.stop()
    assert "Traceback" not in b.output(), b.output()


def test_a_restarted_scheduler_fires_the_tick_it_missed_once_and_never_a_burst(tmp_path, redis_server, redis_client):
    """Down for a few ticks of an every-second schedule: on start it fires the latest missed
    tick within the grace (one), not every tick it missed."""
    first = Scheduler(tmp_path, "first", redis_url=redis_server.url).start()
    first.wait_beating(redis_client)
    wait_until(lambda: redis_client.hget(periodic.PERIODIC, "last:tick"), 30, "a first tick")
    first.kill()
    stopped_at = int(time.time())
    # Down for at least 4 ticks (a bounded wait on a condition: the clock moving on).
    wait_until(lambda: time.time() >= stopped_at + 5, 10, "a few ticks to pass with no scheduler")
    second = Scheduler(tmp_path, "second", redis_url=redis_server.url).start()
    try:
        second.wait_beating(redis_client)
        started = int(time.time())
        wait_fired(redis_client, ticks(started + 1, started + 2))
        gap = ticks(stopped_at + 1, started - 1)
        fired_in_gap = [second_ for second_, job_id in gap.items() if redis_client.exists(status_key(job_id))]
        # At most the latest missed tick (it may also have come just before the start).
        assert len(fired_in_gap) <= 1, f"a burst of catch-up firings: ticks {fired_in_gap}"
    finally:
        second.stop()


def test_a_sentinel_failover_while_firing_doubles_no_tick(tmp_path):
    with running(tmp_path) as replicated:
        env = {"FOODAPP_REDIS_SENTINELS": replicated.sentinel_setting, "FOODAPP_ENQUEUE_REPLICAS": "1",
               "FOODAPP_ENQUEUE_REPLICA_TIMEOUT_MS": "500", "FOODAPP_REDIS_SOCKET_TIMEOUT": "1"}
        a = Scheduler(tmp_path, "a", env=env).start()
        b = Scheduler(tmp_path, "b", env=env).start()
        try:
            client = replicated.master_client()
            a.wait_beating(client)
            b.wait_beating(client)
            before_from = int(time.time()) + 2
            before = ticks(before_from, before_from + 3)
            wait_fired(client, before)
            old_port = replicated.master.port

            replicated.master.kill()
            killed_at = time.time()
            wait_until(lambda: replicated.master_port() not in (None, old_port), 60, "a Sentinel failover", interval=0.2)
            client = replicated.master_client()
            # Firing again on the new master: 4 ticks from the first one after the kill it has.
            after_from = wait_until(
                lambda: next((s for s, j in ticks(int(killed_at) + 1, int(time.time())).items()
                              if client.exists(status_key(j))), None), 60, "a tick fired on the new master", interval=0.2)
            after = ticks(after_from + 1, after_from + 4)
            wait_fired(client, after)

            # Every tick replicated before the kill is on the new master once (the WAIT), every
            # tick after the failover once, and no tick anywhere twice.
            assert {s: stored(client, j) for s, j in before.items()} == dict.fromkeys(before, 1)
            assert {s: stored(client, j) for s, j in after.items()} == dict.fromkeys(after, 1)
            everything = ticks(before_from - 5, after_from + 4)
            counts = {s: stored(client, j) for s, j in everything.items()}
            assert max(counts.values()) == 1, counts
            lost = [s for s in range(int(killed_at) + 1, after_from) if not counts.get(s)]
            print(f"\nfailover while firing: ticks not fired during it: {len(lost)} "
                  f"({after_from - killed_at:.1f} s from the kill to the first tick on the new master)")
        finally:
            for process in (a, b):
                process.stop()


# --- the console --------------------------------------------------------------------------

@pytest.fixture
def periodic_app(redis_server, monkeypatch):
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    monkeypatch.setenv("FOODAPP_PERIODIC_JOBS", f"{EVERY_SECOND}\nnightly = 0 3 * * * report")
    return make_app()


def test_the_api_and_page_show_next_and_last_runs(tmp_path, redis_server, redis_client, periodic_app):
    scheduler = Scheduler(tmp_path, "a", jobs=f"{EVERY_SECOND}\nnightly = 0 3 * * * report",
                          redis_url=redis_server.url).start()
    try:
        scheduler.wait_beating(redis_client)
        wait_until(lambda: redis_client.hget(periodic.PERIODIC, "last:tick"), 30, "a first tick")
        found = periodic_app.get("/ops/api/periodic", status=200).json
    finally:
        scheduler.stop()
    rows = {row["name"]: row for row in found["schedules"]}
    assert list(rows) == ["tick", "nightly"]
    tick = rows["tick"]
    assert (tick["cron"], tick["actor"], tick["args"], tick["queue"]) == ("* * * * * *", "comer", ["pan"], "comer")
    assert tick["next_run"] > found["now"] - 1 and tick["next_run_at"].endswith("Z")
    last = tick["last_run"]
    assert last["fired_by"] == scheduler.identity() and last["manual"] is False
    assert last["job_id"] == periodic.tick_job_id("tick", datetime.fromisoformat(last["tick"]))
    assert last["state"] == "queued" and last["status_url"] == f"/api/jobs/{last['job_id']}"
    assert rows["nightly"]["last_run"] is None
    assert datetime.fromtimestamp(rows["nightly"]["next_run"], timezone.utc).strftime("%H:%M:%S") == "03:00:00"
    assert [s["name"] for s in found["schedulers"]] == [scheduler.identity()] and found["schedulers"][0]["alive"]
    assert found["timezone"] == "UTC" and found["warning"] is None

    page = periodic_app.get("/ops/periodic", status=200)
    assert 'data-schedule="tick"' in page.text and 'data-schedule="nightly"' in page.text
    assert '<script src="/ops/static/periodic.js" defer></script>' in page.text and "<script>" not in page.text
    assert scheduler.identity() in page.text
    # The stopped scheduler removed its heartbeat: the console says nothing fires.
    assert "no scheduler is running" in periodic_app.get("/ops/api/periodic").json["warning"]


def test_run_now_needs_the_csrf_token_is_audited_and_replays_a_repeated_request(periodic_app, redis_client):
    page = periodic_app.get("/ops/periodic", status=200)
    token = re.search(r'data-csrf-token="([^"]+)"', page.text).group(1)
    refused = periodic_app.post("/ops/api/periodic/nightly/run", status=403)
    assert refused.json["error"] == "bad_csrf_token"

    headers = {"X-CSRF-Token": token, "Idempotency-Key": "press-1"}
    answer = periodic_app.post("/ops/api/periodic/nightly/run", headers=headers, status=202).json
    assert answer["manual"] is True and answer["replayed"] is False and answer["fired_by"] == "console (anonymous)"
    assert redis_client.hget(status_key(answer["job_id"]), "actor") == "report"
    again = periodic_app.post("/ops/api/periodic/nightly/run", headers=headers, status=202).json
    assert again["job_id"] == answer["job_id"] and again["replayed"] is True
    assert stored(redis_client, answer["job_id"]) == 1 and redis_client.llen("dramatiq:batch") == 1
    audit = [json.loads(entry) for entry in redis_client.lrange("foodapp:audit", 0, -1)]
    assert [(e["action"], e["schedule"], e["job_id"]) for e in audit] == [
        ("run periodic job now", "nightly", answer["job_id"])]
    last = periodic_app.get("/ops/api/periodic").json["schedules"][1]["last_run"]
    assert last["job_id"] == answer["job_id"] and last["manual"] is True

    missing = periodic_app.post("/ops/api/periodic/cena/run", headers={"X-CSRF-Token": token}, status=404).json
    assert missing["error"] == "no_such_schedule" and "tick, nightly" in missing["message"]
