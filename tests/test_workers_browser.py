"""The Workers page in a real browser (Playwright driving Debian's Chromium) on a real host:
supervisord running supervisor/production.conf (shrunk to one queue worker and one batch
worker), the page's Stop and Start buttons sent through its XML-RPC. Screenshots go to
tests/artifacts/."""
import json

import pytest

from tests.hosts import Host
from tests.servers import wait_until
from tests.test_browser import browser, shot  # noqa: F401 (the module's Chromium)

pytestmark = pytest.mark.e2e

PROGRAM = "workers:workers_00"


@pytest.fixture
def host(tmp_path, redis_server):
    host = Host(tmp_path, "a", redis_server.url, workers=1, batch=1)
    try:
        yield host.start()
    finally:
        host.stop()


@pytest.fixture
def confirming_page(browser):  # noqa: F811
    """A page whose confirm() dialogs are answered by ``page.answer`` (True: OK); any other
    dialog (an alert: a script that should not have run) fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.answer, page.dialogs = True, []

    def on_dialog(dialog):
        page.dialogs.append((dialog.type, dialog.message))
        dialog.accept() if dialog.type == "confirm" and page.answer else dialog.dismiss()
    page.on("dialog", on_dialog)
    yield page
    context.close()
    assert all(kind == "confirm" for kind, _ in page.dialogs), page.dialogs


def row(page, table, state):
    return page.locator(f"#{table} tr[data-program='{PROGRAM}'][data-state='{state}']")


def pid_shown(page):
    return int(page.locator(f"#processes tr[data-program='{PROGRAM}'] td[data-label='pid']").inner_text().split()[0])


def test_stop_and_start_a_worker_from_the_page(host, confirming_page, redis_server):
    page = confirming_page
    page.goto(f"{host.url}/ops/workers")
    row(page, "processes", "alive").wait_for(timeout=30000)
    first_pid = pid_shown(page)
    assert "RUNNING" in row(page, "processes", "alive").inner_text()
    shot(page, "workers")

    # Cancel in the confirmation: nothing is stopped.
    page.answer = False
    row(page, "processes", "alive").locator("button[data-action='stop']").click()
    wait_until(lambda: len(page.dialogs) == 1, 10, "the confirmation")
    assert page.dialogs[0][1].startswith(f"Stop {PROGRAM}?")
    assert host.status()[PROGRAM][0] == "RUNNING"

    page.answer = True
    row(page, "processes", "alive").locator("button[data-action='stop']").click()
    row(page, "programs", "STOPPED").wait_for(timeout=60000)
    assert host.status()[PROGRAM] == ("STOPPED", None)
    assert f"{PROGRAM} is STOPPED" in page.locator("#toast").inner_text()
    assert page.locator(f"#processes tr[data-program='{PROGRAM}']").count() == 0
    shot(page, "workers-stopped")

    row(page, "programs", "STOPPED").locator("button[data-action='start']").click()  # no confirmation to start
    row(page, "processes", "alive").wait_for(timeout=60000)
    assert len(page.dialogs) == 2 and host.status()[PROGRAM][0] == "RUNNING"
    assert pid_shown(page) != first_pid
    assert page.locator(f"#programs tr[data-program='{PROGRAM}']").count() == 0
    shot(page, "workers-started")

    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "workers-phone")

    audit = [json.loads(entry) for entry in redis_server.client().lrange("foodapp:audit", 0, -1)]
    assert [(e["action"], e["program"], e["outcome"]) for e in reversed(audit)] == [
        ("stop worker program", PROGRAM, "STOPPED"), ("start worker program", PROGRAM, "RUNNING")]
