"""The jobs' pages in a real browser (Playwright driving Debian's Chromium) against real
waitress and a real worker: search, open a job, cancel, run now, retry, bulk. Screenshots
go to tests/artifacts/."""
import dramatiq
import pytest
from playwright.sync_api import expect

from foodapp import jobs
from tests import action_actors
from tests.servers import http, wait_until
from tests.test_browser import browser, shot, site  # noqa: F401 (fixtures)
from tests.test_job_actions import counting_worker, stop

pytestmark = pytest.mark.e2e


def state(client, job_id):
    value = client.hget(jobs.status_key(job_id), "state")
    return value.decode() if value else None


@pytest.fixture
def page(browser):  # noqa: F811
    """test_browser's page, except that a confirm() (a destructive action's) is accepted and
    kept in ``page.confirms``; any other dialog (an alert: a script that should not run)
    fails the test."""
    context = browser.new_context()
    page = context.new_page()
    page.confirms, others = [], []

    def on_dialog(dialog):
        if dialog.type == "confirm":
            page.confirms.append(dialog.message)
            dialog.accept()
        else:
            others.append(dialog.message)
            dialog.dismiss()
    page.on("dialog", on_dialog)
    yield page
    context.close()
    assert not others, f"a script ran in the page: {others}"


def test_search_open_a_job_and_cancel_it(site, page, redis_server):  # noqa: F811
    client = redis_server.client()
    orders = {item: http("GET", f"{site.url}/comer/{item}")[2]["job_id"] for item in ("pimiento", "pepino", "tomate")}
    later = http("GET", f"{site.url}/beber/rioja?delay=3600")[2]["job_id"]

    page.goto(f"{site.url}/ops/jobs")
    assert page.locator("#results tbody tr").count() == 4
    page.select_option("select[name=state]", "queued")
    page.fill("#job-search input[name=item]", "pepino")
    page.click("#job-search button:has-text('Search')")
    page.wait_for_url("**/ops/jobs?*item=pepino*")
    rows = page.locator("#results tbody tr")
    assert rows.count() == 1 and orders["pepino"] in rows.first.inner_text()
    shot(page, "jobs-search")

    page.click(f"a[href='/ops/jobs/{orders['pepino']}']")
    page.wait_for_url(f"**/ops/jobs/{orders['pepino']}")
    assert page.locator("#job td.state").inner_text() == "queued"
    assert page.locator("form[data-action=run-now]").is_hidden()
    page.click("form[data-action=cancel] button")
    expect(page.locator("#job td.state")).to_have_text("cancelled", timeout=10_000)
    assert state(client, orders["pepino"]) == "cancelled"
    assert page.confirms == ["Cancel this job? It will never run."]
    expect(page.locator("#toast")).to_contain_text("cancelled")
    assert page.locator("form[data-action=cancel]").is_hidden()
    assert "cancelled" in page.locator("#timeline").inner_text()
    shot(page, "job-cancelled")

    # The scheduled one: run it now (no confirm), then it is queued.
    page.goto(f"{site.url}/ops/jobs/{later}")
    assert page.locator("#job td.state").inner_text() == "scheduled"
    page.click("form[data-action=run-now] button")
    expect(page.locator("#job td.state")).to_have_text("queued", timeout=10_000)
    assert state(client, later) == "queued" and client.llen("dramatiq:beber") == 1
    shot(page, "job-run-now")


def test_retry_a_dead_job_and_its_logs_and_a_live_state(site, page, redis_server, tmp_path):  # noqa: F811
    client = redis_server.client()
    broker = dramatiq.get_broker()
    counted = action_actors.declare(broker)
    client.sadd(action_actors.FAILING, "quemado")
    worker = counting_worker(tmp_path, redis_server).start()
    try:
        broken = counted.send("quemado").message_id
        wait_until(lambda: state(client, broken) == "dead", 60, f"the job to die\n{worker.output()}")
        page.goto(f"{site.url}/ops/jobs/{broken}")
        assert "counting quemado" in page.locator("#logs").inner_text() or wait_until(
            lambda: page.reload() or "counting quemado" in page.locator("#logs").inner_text(), 30, "the logs")
        assert page.locator("form[data-action=retry]").is_visible()
        shot(page, "job-dead-with-logs")
        client.srem(action_actors.FAILING, "quemado")
        page.click("form[data-action=retry] button")
        # The page follows the job live until it is done.
        expect(page.locator("#job td.state")).to_have_text("done", timeout=60_000)
        assert int(client.hget(action_actors.RUNS, broken)) == 2
        assert '"quemado"' in page.locator("#result").inner_text()
        assert page.locator("form.job-action:visible").count() == 0
        shot(page, "job-retried-done")
    finally:
        stop(worker)


def test_bulk_cancel_of_the_jobs_ticked_and_of_a_whole_search(site, page, redis_server):  # noqa: F811
    client = redis_server.client()
    ids = [http("GET", f"{site.url}/comer/lote{n % 2}")[2]["job_id"] for n in range(6)]

    page.goto(f"{site.url}/ops/jobs?item=lote0")
    assert page.locator("#results tbody tr").count() == 3
    page.check("#select-all")
    assert page.locator("#results input[name=ids]:checked").count() == 3
    shot(page, "jobs-bulk-selected")
    page.click("#bulk-actions button[value=cancel]")
    expect(page.locator("#toast")).to_contain_text("3 of 3", timeout=10_000)
    assert [state(client, job_id) for job_id in ids[0::2]] == ["cancelled"] * 3
    assert page.confirms == ["Cancel these jobs? They will never run. (3 job(s))"]

    page.goto(f"{site.url}/ops/jobs?item=lote1&state=queued")
    page.select_option("#bulk-scope", "search")
    page.click("#bulk-actions button[value=cancel]")
    expect(page.locator("#toast")).to_contain_text("3 of 3", timeout=10_000)
    assert [state(client, job_id) for job_id in ids[1::2]] == ["cancelled"] * 3
    page.wait_for_load_state()
    page.goto(f"{site.url}/ops/jobs?state=cancelled")
    assert page.locator("#results tbody tr").count() == 6
    shot(page, "jobs-bulk-cancelled")
    audit = [entry.decode() for entry in client.lrange("foodapp:audit", 0, -1)]
    assert sum("bulk cancel" in entry for entry in audit) == 2
