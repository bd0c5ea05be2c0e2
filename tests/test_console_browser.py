"""The console's overview (/ops) in a real browser (Playwright driving Debian's Chromium):
its look, live updates that keep what is typed, polling that stops in a hidden tab, the queue
buttons end to end, the charts, a phone's screen, the keyboard. Screenshots go to
tests/artifacts/console-*.png.

Time in the page is Playwright's fake clock where the test is about the 5-second polling
(page.clock.run_for), so nothing waits on the wall clock."""
import json

import pytest

from tests.servers import Worker, http, wait_until
from tests.test_browser import browser, shot, site  # noqa: F401 (fixtures)

pytestmark = pytest.mark.e2e

OVERVIEW = "/ops/api/overview"


class Console:
    """A page on /ops with the requests it made counted, and answers ready for its prompts."""

    def __init__(self, context, url):
        self.page = context.new_page()
        self.url = url
        self.requests = []
        self.answers = []       # what to type into the next prompts (purge asks for the queue's name)
        self.unexpected = []    # any other dialog: alert() would mean a script ran that should not
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("dialog", self._dialog)

    def _dialog(self, dialog):
        if dialog.type == "prompt" and self.answers:
            dialog.accept(self.answers.pop(0))
        else:
            self.unexpected.append(dialog.message)
            dialog.dismiss()

    def polls(self):
        return sum(1 for url in self.requests if url.endswith(OVERVIEW))

    def wait_polls(self, count):
        # Playwright's sync API delivers events only while it is called: a call per check.
        wait_until(lambda: self.page.evaluate("0") == 0 and self.polls() >= count, 20, f"{count} requests to {OVERVIEW}")
        # One round trip to the page: its answers are in, the DOM updated after them.
        self.page.wait_for_function("() => document.getElementById('live').textContent.startsWith('Live')")


@pytest.fixture
def console(browser, site):  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    console = Console(context, site.url)
    yield console
    context.close()
    assert not console.unexpected, f"a dialog opened that no test asked for: {console.unexpected}"


def test_the_overview_is_styled_and_what_is_typed_survives_live_updates(console, site):  # noqa: F811
    page = console.page
    page.clock.install()
    page.goto(f"{site.url}/ops")
    page.clock.run_for(100)
    console.wait_polls(1)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(31, 37, 48)"  # the dashboard's dark background
    assert page.locator("nav a[aria-current='page']").inner_text().lower() == "overview"
    assert page.locator("tr[data-queue='comer'] td.queued").inner_text() == "0"

    page.fill("#nav-job-id", "f12f8600-a9e9")
    page.evaluate("window.__notReloaded = true")
    for number in range(3):  # 15 s of the page's time: three updates
        assert http("GET", f"{site.url}/comer/pan{number}")[0] == 202
        page.clock.run_for(5000)
        console.wait_polls(2 + number)
        page.wait_for_function(
            "n => document.querySelector(\"tr[data-queue='comer'] td.queued\").textContent === String(n)", arg=number + 1)
    assert page.input_value("#nav-job-id") == "f12f8600-a9e9"
    assert page.evaluate("window.__notReloaded") is True
    shot(page, "console-overview")


def test_polling_stops_while_the_tab_is_hidden_and_resumes_when_shown(console, site):  # noqa: F811
    page = console.page
    page.clock.install()
    page.goto(f"{site.url}/ops")
    page.clock.run_for(100)
    console.wait_polls(1)
    page.clock.run_for(5000)
    console.wait_polls(2)

    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'hidden'});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    before = console.polls()
    page.clock.run_for(60_000)  # a minute in the background
    page.evaluate("1")  # a round trip: any request the timers made has been reported by now
    assert console.polls() == before
    assert "paused while this tab is hidden" in page.inner_text("#live")

    page.evaluate("""() => {
        Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => 'visible'});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    console.wait_polls(before + 1)  # at once, without waiting for the next 5 s


def test_pause_resume_and_purge_from_the_queue_buttons(console, site, redis_server):  # noqa: F811
    page, client = console.page, redis_server.client(decode_responses=True)
    for item in ("pan", "queso", "vino"):
        assert http("GET", f"{site.url}/comer/{item}")[0] == 202
    page.goto(f"{site.url}/ops")
    console.wait_polls(1)
    row = page.locator("tr[data-queue='comer']")

    row.locator("button[data-action='pause']").click()
    row.locator(".badge.paused").wait_for(state="visible")
    assert client.hexists("foodapp:paused", "comer")
    assert "paused" in page.inner_text("#toast")
    assert row.locator("button[data-action='resume']").inner_text() == "RESUME"
    shot(page, "console-paused")
    row.locator("button[data-action='resume']").click()
    row.locator(".badge.paused").wait_for(state="hidden")
    assert not client.hexists("foodapp:paused", "comer")

    console.answers.append("beber")  # the wrong name: nothing is purged
    row.locator("button[data-action='purge']").click()
    page.wait_for_function("() => document.getElementById('toast').textContent.startsWith('Nothing purged')")
    assert client.llen("dramatiq:comer") == 3

    console.answers.append("comer")
    row.locator("button[data-action='purge']").click()
    page.wait_for_function("() => document.querySelector(\"tr[data-queue='comer'] td.queued\").textContent === '0'")
    assert client.llen("dramatiq:comer") == 0
    assert "3 job(s) removed" in page.inner_text("#toast")
    audit = [json.loads(entry)["action"] for entry in client.lrange("foodapp:audit", 0, -1)]
    assert audit == ["purge queue", "resume queue", "pause queue"]
    page.wait_for_function("() => document.getElementById('audit').textContent.includes('purge queue')")
    shot(page, "console-purged")


def test_the_charts_draw_what_the_workers_did(console, site, redis_server, tmp_path):  # noqa: F811
    page = console.page
    worker = Worker(tmp_path, redis_server.url, queues=("comer", "beber"))
    try:
        worker.start()
        client = redis_server.client()
        wait_until(lambda: client.zcard("dramatiq:__heartbeats__") == 1, 30, "the worker's first heartbeat")
        orders = [http("GET", f"{site.url}/comer/plato{n}")[2] for n in range(5)]
        wait_until(lambda: all(http("GET", order["status_url"])[2]["state"] == "done" for order in orders), 60,
                   "the five orders to be done")
        page.goto(f"{site.url}/ops")
        console.wait_polls(1)
        page.wait_for_function("() => Number(document.querySelector('#chart-rates svg').dataset.points) > 0")
        assert page.locator("#chart-rates path.line[data-series='processed']").count() == 1
        page.wait_for_function("() => document.querySelector('#chart-workers svg path.line') !== null")
        assert page.locator("#chart-depth path.line").count() >= 2  # comer, beber (and batch)
        assert page.locator("#chart-workers .legend .value").inner_text() == "1"
        # The master's CPU: drawn from two samples in a row (the worker's heartbeat takes one
        # each 10 s); until then the chart says it has none.
        page.wait_for_function("() => document.querySelector('#chart-redis-cpu svg') !== null")
        shot(page, "console-charts")
    finally:
        worker.stop()


def test_on_a_phone_nothing_is_wider_than_the_screen(browser, site):  # noqa: F811
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                  device_scale_factor=2)
    try:
        page = context.new_page()
        page.goto(f"{site.url}/ops")
        page.wait_for_function("() => document.getElementById('live').textContent.startsWith('Live')")
        page.wait_for_function("() => document.querySelector('#chart-rates svg') !== null")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        # The queue table became cards: its header row is out of sight, each cell labelled.
        assert page.evaluate(
            "getComputedStyle(document.querySelector(\"tr[data-queue='comer']\")).display") == "block"
        shot(page, "console-phone")
    finally:
        context.close()


def test_the_keyboard_reaches_the_skip_link_the_job_box_and_the_queue_buttons(console, site):  # noqa: F811
    page = console.page
    page.goto(f"{site.url}/ops")
    console.wait_polls(1)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    reached = set()
    for _ in range(60):  # bounded: the page has fewer stops than this before the queue buttons
        page.keyboard.press("Tab")
        focused = page.evaluate("""() => {
            const e = document.activeElement;
            const style = getComputedStyle(e);
            return {id: e.id, action: e.getAttribute('data-action'), queue: e.getAttribute('data-queue'),
                    outline: style.outlineStyle};
        }""")
        if focused["id"] == "nav-job-id":
            reached.add("job box")
        if focused["action"]:
            assert focused["outline"] != "none", "the focused button shows no focus ring"
            reached.add(f"{focused['action']} {focused['queue']}")
        if "pause comer" in reached:
            break
    assert {"job box", "pause batch", "purge batch", "pause beber", "pause comer"} <= reached, reached
    # The charts' data is held back until the end: the page redraws the queues first and
    # the charts after, and the focus must not wait for them (a CI run, the machine busy,
    # found the button without focus between the two).
    held = []
    page.route("**/ops/api/series*", lambda route: held.append(route))
    page.keyboard.press("Enter")  # on Pause comer: the keyboard acts as a click does
    page.locator("tr[data-queue='comer'] .badge.paused").wait_for(state="visible")
    assert page.evaluate("document.activeElement.getAttribute('data-action')") == "resume"  # focus kept
    assert held, "the charts were not asked for again after the pause"
    for route in held:
        route.continue_()
    page.unroute("**/ops/api/series*")
