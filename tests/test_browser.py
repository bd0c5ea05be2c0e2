"""In a real browser (Playwright driving Debian's Chromium): the dashboard, the operations
page, their buttons, escaping, and the login. Screenshots go to tests/artifacts/."""
import os
from pathlib import Path

import dramatiq
import pytest

from foodapp.security import hash_password
from tests.conftest import make_app
from tests.servers import Web, Worker, http, wait_until

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"the browser tests need Debian's Chromium at {CHROMIUM}: apt-get install chromium "
                    "(make test installs it, as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.dialogs = dialogs
    yield page
    context.close()
    assert not dialogs, f"a script ran in the page: {dialogs}"


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def site(tmp_path, redis_server, monkeypatch):
    """Real waitress on a private Redis; the test's own broker to make dead letters."""
    web = Web(tmp_path, redis_server.url)
    try:
        web.start()
        monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
        make_app()
        yield web
    finally:
        web.stop()


def dead_letter(redis_server, tmp_path, items):
    """Jobs for an actor no worker has: the real worker dead-letters them."""
    broker = dramatiq.get_broker()
    for item in items:
        broker.enqueue(dramatiq.Message(queue_name="comer", actor_name="no_such_actor", args=(item,), kwargs={}, options={}))
    worker = Worker(tmp_path, redis_server.url, queues=("comer",))
    try:
        worker.start()
        wait_until(lambda: redis_server.client().zcard("dramatiq:comer.XQ") == len(items), 60, "the dead letters")
    finally:
        worker.stop()


def test_the_dashboard_lists_queues_and_jobs(site, page, redis_server):
    for item in ("pimiento", "pepino", "tomate"):
        assert http("GET", f"{site.url}/comer/{item}")[0] == 202
    assert http("GET", f"{site.url}/beber/rioja")[0] == 202

    page.goto(f"{site.url}/jobs")
    rows = {name: page.locator(f"tr:has(a[href$='/queues/{name}']) td.table__number--primary").first.inner_text()
            for name in ("comer", "beber", "batch")}
    assert rows == {"comer": "3", "beber": "1", "batch": "0"}
    shot(page, "dashboard")

    page.click("a[href$='/queues/comer']")
    page.wait_for_url("**/queues/comer")
    text = page.content()
    assert all(item in text for item in ("pimiento", "pepino", "tomate"))
    shot(page, "dashboard-queue-comer")


def test_dead_letters_are_requeued_and_deleted_with_the_dashboards_buttons(site, page, redis_server, tmp_path):
    dead_letter(redis_server, tmp_path, ["piedra", "arena"])
    client = redis_server.client()

    page.goto(f"{site.url}/jobs/queues/comer/failed")
    shot(page, "dashboard-dead-letters")
    page.locator("button:has-text('Requeue')").first.click()
    page.wait_for_load_state()
    wait_until(lambda: client.zcard("dramatiq:comer.XQ") == 1 and client.llen("dramatiq:comer") == 1, 10,
               "the requeued job to be back in its queue in Redis")

    page.goto(f"{site.url}/jobs/queues/comer/failed")
    page.locator("table a[href*='/queues/comer/failed/']").first.click()
    page.wait_for_url("**/failed/*")
    shot(page, "dashboard-dead-letter")
    page.click("button:has-text('Delete')")
    page.wait_for_load_state()
    wait_until(lambda: client.zcard("dramatiq:comer.XQ") == 0 and client.hlen("dramatiq:comer.XQ.msgs") == 0, 10,
               "the deleted job to be gone from Redis")
    audit = [entry.decode() for entry in client.lrange("foodapp:audit", 0, -1)]
    assert any("dashboard requeue" in entry for entry in audit) and any("dashboard delete" in entry for entry in audit)


def test_the_ops_page_searches_a_job_and_requeues_dead_letters(site, page, redis_server, tmp_path):
    dead_letter(redis_server, tmp_path, ["ladrillo", "tiza"])
    status, _, order = http("GET", f"{site.url}/beber/horchata")
    page.goto(f"{site.url}/ops")
    assert page.locator("tr[data-queue='comer'] td.dead-letters").inner_text() == "2"
    shot(page, "ops")

    page.fill("input[name=id]", order["job_id"])
    page.click("button:has-text('Open')")
    page.wait_for_url(f"**/ops/jobs/{order['job_id']}")
    assert "horchata" in page.locator("#job").inner_text()
    shot(page, "ops-job")

    page.goto(f"{site.url}/ops")
    page.click("button:has-text('Requeue all 2 dead letters')")
    page.wait_for_url(f"{site.url}/ops")
    client = redis_server.client()
    assert client.zcard("dramatiq:comer.XQ") == 0 and client.llen("dramatiq:comer") == 2
    assert "requeue all dead letters" in page.locator("#audit").inner_text()


def test_markup_in_names_is_shown_as_text_and_never_runs(site, page, redis_server):
    broker = dramatiq.get_broker()
    ids = [broker.get_actor("comer").send(item).message_id for item in XSS]
    for path in ["/jobs", "/jobs/queues/comer", "/ops", *[f"/ops/jobs/{job_id}" for job_id in ids]]:
        page.goto(f"{site.url}{path}")
        page.wait_for_load_state("load")
    page.goto(f"{site.url}/ops/jobs/{ids[0]}")
    assert XSS[0] in page.locator("#job .args").inner_text()
    page.goto(f"{site.url}/jobs/queues/comer")
    assert XSS[1] in page.locator("body").inner_text()
    shot(page, "escaped")
    # The page fixture fails the test if any dialog (alert) opened.


def test_production_asks_for_a_login(tmp_path, redis_server, browser):
    secret_hash = hash_password("cocina secreta", n=2 ** 10)
    ini = tmp_path / "login.ini"
    ini.write_text((Path(__file__).resolve().parent.parent / "testing.ini").read_text()
                   .replace("dashboard.login_required = false", "dashboard.login_required = true"))
    web = Web(tmp_path, redis_server.url, ini=ini, env={
        "FOODAPP_DASHBOARD_USERNAME": "jefe", "FOODAPP_DASHBOARD_PASSWORD_HASH": secret_hash})
    try:
        web.start()
        from playwright.sync_api import Error

        for credentials, expected in ((None, 401), ({"username": "jefe", "password": "mal"}, 401),
                                      ({"username": "jefe", "password": "cocina secreta"}, 200)):
            context = browser.new_context(http_credentials=credentials) if credentials else browser.new_context()
            try:
                status = context.new_page().goto(f"{web.url}/ops").status
            except Error as error:  # Chromium gives up on credentials the server keeps refusing
                assert "ERR_INVALID_AUTH_CREDENTIALS" in str(error)
                status = 401
            finally:
                context.close()
            assert status == expected, credentials
    finally:
        web.stop()
