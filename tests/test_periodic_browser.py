"""/ops/periodic in a real browser (Playwright driving Debian's Chromium): a real web process
and a real scheduler on a private Redis; the page updates itself as ticks fire, and "Run now"
queues the schedule's job. Screenshots go to tests/artifacts/."""
import json

import pytest

from tests.servers import Web, http, wait_until
from tests.test_browser import browser, page, shot  # noqa: F401  (fixtures)
from tests.test_periodic import Scheduler

pytestmark = pytest.mark.e2e

JOBS = 'every_2s = */2 * * * * * comer ["pan"]\nnightly_report = 0 3 * * * report'


@pytest.fixture
def site(tmp_path, redis_server):
    web = Web(tmp_path, redis_server.url, env={"FOODAPP_PERIODIC_JOBS": JOBS})
    scheduler = Scheduler(tmp_path, "a", jobs=JOBS, redis_url=redis_server.url)
    try:
        web.start()
        scheduler.start().wait_beating(redis_server.client(decode_responses=True))
        yield web, scheduler
    finally:
        scheduler.stop()
        web.stop()


def test_the_periodic_page_updates_live_and_runs_a_job_now(site, page, redis_server):
    web, scheduler = site
    # Script errors and CSP refusals come as console errors; failed loads are checked by URL
    # (the browser asks for /favicon.ico, which foodapp does not serve).
    errors = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.on("response", lambda response: errors.append(f"{response.status} {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico") else None)
    client = redis_server.client(decode_responses=True)
    wait_until(lambda: client.hget("foodapp:periodic", "last:every_2s"), 30, "a first tick")

    page.goto(f"{web.url}/ops/periodic")
    row = page.locator("tr[data-schedule='every_2s']")
    assert row.locator("td.cron").inner_text() == "*/2 * * * * *"
    assert row.locator("td.actor").inner_text().startswith("comer")
    assert row.locator("td.fired-by").inner_text() == scheduler.identity()
    # Times in the browser's time zone, the instant in the datetime attribute: the next run after the last.
    next_run = float(row.locator("td.next-run time").get_attribute("data-epoch"))
    assert next_run > float(row.locator("td.last-run time").get_attribute("data-epoch"))
    assert row.locator("td.next-run time").get_attribute("datetime").endswith("Z")
    first_job = row.locator("td.job a").inner_text()
    assert page.locator(f"#schedulers tr[data-scheduler='{scheduler.identity()}'] .badge").text_content() == "alive"
    assert page.locator("tr[data-schedule='nightly_report'] td.last-run").inner_text() == "never"

    # Live: a later tick's job replaces the first without reloading the page.
    page.wait_for_function(
        "first => { const a = document.querySelector(\"tr[data-schedule='every_2s'] td.job a\");"
        " return a && a.textContent !== first; }", arg=first_job, timeout=30000)
    assert page.locator("#live").inner_text().startswith("Live: updated")
    shot(page, "ops-periodic")

    # Run now, with the keyboard: the job is queued and the page says which.
    page.locator("tr[data-schedule='nightly_report'] button.run-now").focus()
    page.keyboard.press("Enter")
    toast = page.locator("#toast")
    toast.wait_for(state="visible", timeout=10000)
    assert toast.inner_text().startswith("Queued nightly_report now: job ")
    job_id = toast.inner_text().rsplit(" ", 1)[1]
    status, _, job = http("GET", f"{web.url}/api/jobs/{job_id}")
    assert status == 200 and job["actor"] == "report"
    nightly = page.locator("tr[data-schedule='nightly_report']")
    page.wait_for_function("() => document.querySelector(\"tr[data-schedule='nightly_report'] td.job a\")",
                           timeout=10000)
    assert nightly.locator("td.job a").inner_text() == job_id
    assert nightly.locator("td.last-run .badge").text_content() == "run now"
    assert nightly.locator("td.fired-by").inner_text() == "console (anonymous)"
    audit = [json.loads(entry) for entry in client.lrange("foodapp:audit", 0, -1)]
    assert [(e["action"], e["job_id"]) for e in audit] == [("run periodic job now", job_id)]
    shot(page, "ops-periodic-run-now")
    assert not errors, errors


def test_the_periodic_page_reads_without_javascript(site, browser, redis_server):  # noqa: F811
    web, scheduler = site
    wait_until(lambda: redis_server.client().hget("foodapp:periodic", "last:every_2s"), 30, "a first tick")
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{web.url}/ops/periodic")
        row = page.locator("tr[data-schedule='every_2s']")
        assert row.locator("td.fired-by").inner_text() == scheduler.identity()
        assert row.locator("td.next-run time").get_attribute("datetime").endswith("Z")
        assert not page.locator("button.run-now").first.is_visible()  # an action needs the script
        shot(page, "ops-periodic-no-js")
    finally:
        context.close()
