"""The console's search over recent jobs (foodapp/search.py): the index the enqueue writes,
its retention, the filters, pagination, the bounds on a request, and bad input."""
import json
import time
import uuid

import pytest

from foodapp import broker as broker_module
from foodapp import jobs, search
from tests.conftest import make_app


def ids_of(answer):
    return [job["job_id"] for job in answer["jobs"]]


def fill(client, count, *, state="done", actor="comer", queue="comer", item="pan", at=None, step=0.001):
    """``count`` jobs written straight into Redis as the enqueue writes them (status hash and
    index entries), newest last; returns their ids, oldest first."""
    at = time.time() if at is None else at
    ids = []
    with client.pipeline(transaction=False) as pipe:
        for n in range(count):
            job_id = str(uuid.uuid4())
            score = f"{at - (count - n) * step:.3f}"
            pipe.hset(jobs.status_key(job_id), mapping={
                "state": state, "job_id": job_id, "queue": queue, "actor": actor,
                "args": json.dumps([item]), "enqueued_at": score})
            pipe.zadd(search.INDEX, {job_id: score})
            pipe.zadd(search.index_key("actor", actor), {job_id: score})
            pipe.zadd(search.index_key("item", item), {job_id: score})
            ids.append(job_id)
            if len(pipe) >= 4000:
                pipe.execute()
        pipe.execute()
    return ids


def test_every_new_job_is_indexed_by_the_enqueue_itself_and_found_by_each_filter(app, redis_client):
    made = {}
    for path in ("/comer/pan", "/beber/vino", "/comer/queso", "/comer/pan", "/beber/agua?delay=600"):
        made.setdefault(path, []).append(app.get(path, status=202).json["job_id"])
    pan, vino, queso = made["/comer/pan"], made["/beber/vino"][0], made["/comer/queso"][0]
    agua = made["/beber/agua?delay=600"][0]
    assert redis_client.zcard(search.INDEX) == 5

    everything = app.get("/ops/api/jobs").json
    assert ids_of(everything) == [agua, pan[1], queso, vino, pan[0]], "newest first"
    assert everything["more"] is False and everything["next_cursor"] is None

    assert ids_of(app.get("/ops/api/jobs", params={"item": "pan"}).json) == [pan[1], pan[0]]
    assert ids_of(app.get("/ops/api/jobs", params={"actor": "beber"}).json) == [agua, vino]
    assert ids_of(app.get("/ops/api/jobs", params={"queue": "comer"}).json) == [pan[1], queso, pan[0]]
    assert ids_of(app.get("/ops/api/jobs", params={"state": "scheduled"}).json) == [agua]
    assert ids_of(app.get("/ops/api/jobs", params={"item": "pan", "actor": "beber"}).json) == []
    assert ids_of(app.get("/ops/api/jobs", params={"id": queso}).json) == [queso]
    assert ids_of(app.get("/ops/api/jobs", params={"id": queso, "state": "done"}).json) == []
    row = app.get("/ops/api/jobs", params={"id": vino}).json["jobs"][0]
    assert row["state"] == "queued" and row["item"] == "vino" and row["queue"] == "beber" and row["actor"] == "beber"
    assert row["enqueued_at"].endswith("Z")

    # The time range: since and until, ISO 8601 or epoch seconds.
    enqueued = float(redis_client.zscore(search.INDEX, queso))
    window = {"since": f"{enqueued:.6f}", "until": f"{enqueued:.6f}"}
    assert ids_of(app.get("/ops/api/jobs", params=window).json) == [queso]
    window = {"since": jobs.iso(enqueued - 1), "until": jobs.iso(enqueued + 1)}
    assert queso in ids_of(app.get("/ops/api/jobs", params=window).json)
    assert ids_of(app.get("/ops/api/jobs", params={"since": jobs.iso(time.time() + 60)}).json) == []

    # A retry or a due move is not a new job: indexed once.
    assert redis_client.zcard(search.index_key("item", "pan")) == 2


def test_jobs_enqueued_within_one_millisecond_are_listed_newest_first(app, broker):
    """The CI run that failed: two orders stored in the same millisecond came back in the
    order of their ids. Each enqueue indexes after the newest entry, in one call or many."""
    actor = broker.get_actor("comer")
    one_by_one = [broker.enqueue(actor.message(f"plato{n}")).message_id for n in range(40)]
    menu = [m.message_id for m in broker.enqueue_many([(actor.message(f"menu{n}"), None) for n in range(40)])]
    answer = app.get("/ops/api/jobs", params={"limit": 80}).json
    assert ids_of(answer) == (one_by_one + menu)[::-1]


@pytest.mark.parametrize("item", ["a:b{c}d", "jamón 🍎", "x" * 64, "*", "foodapp:index:jobs"])
def test_any_item_makes_a_safe_index_key_and_is_found_exactly(app, item):
    from urllib.parse import quote

    job_id = app.get(f"/comer/{quote(item, safe='')}", status=202).json["job_id"]
    app.get("/comer/other", status=202)
    key = search.index_key("item", item)
    assert key.startswith("foodapp:index:item:") and len(key) == len("foodapp:index:item:") + 40
    assert ids_of(app.get("/ops/api/jobs", params={"item": item}).json) == [job_id]


def test_the_index_keeps_jobs_for_the_status_ttl_and_at_most_the_configured_count(redis_server, monkeypatch):
    """Trimmed in one enqueue call in INDEX_TRIM_EVERY (a process's first included), so a key
    holds at most that many jobs more than the most between two trims."""
    monkeypatch.setenv("FOODAPP_REDIS_URL", redis_server.url)
    monkeypatch.setattr(broker_module, "INDEX_TRIM_EVERY", 4)
    app = make_app(**{"ops.index_max_jobs": "5"})
    client = redis_server.client()
    # One entry older than the status ttl (86400 s in testing.ini): the first enqueue trims it.
    fill(client, 1, at=time.time() - 86400 - 60)
    assert client.zcard(search.INDEX) == 1
    made = [app.get("/comer/plato0", status=202).json["job_id"]]
    assert client.zrange(search.INDEX, 0, -1) == [made[0].encode()]
    made += [app.get(f"/comer/plato{n}", status=202).json["job_id"] for n in range(1, 8)]
    assert client.zcard(search.INDEX) == 8  # the 5th call trimmed to 5; three more since
    made.append(app.get("/comer/plato8", status=202).json["job_id"])  # the 9th trims
    assert client.zcard(search.INDEX) == 5
    kept = {member.decode() for member in client.zrange(search.INDEX, 0, -1)}
    assert kept <= set(made) and made[-1] in kept
    enqueued = {job_id: float(client.hget(jobs.status_key(job_id), "enqueued_at")) for job_id in made}
    assert min(enqueued[job_id] for job_id in kept) >= max(enqueued[job_id] for job_id in set(made) - kept)
    assert client.zcard(search.index_key("actor", "comer")) == 5
    # Every index key expires with the statuses (and goes if nothing is enqueued again).
    for key in (search.INDEX, search.index_key("actor", "comer"), search.index_key("item", "plato7")):
        assert 86000 < client.ttl(key) <= 86400


def test_pages_follow_the_cursor_newest_first_each_job_once_even_with_equal_enqueue_times(app, redis_client):
    same = fill(redis_client, 130, step=0)  # one enqueue time for all of them (a menu, say)
    older = fill(redis_client, 40, at=time.time() - 60)
    expected = sorted(same, reverse=True) + older[::-1]  # Redis orders equal scores by member
    seen, cursor, pages = [], None, 0
    while pages < 20:
        answer = app.get("/ops/api/jobs", params={"limit": 50, **({"cursor": cursor} if cursor else {})}).json
        seen += ids_of(answer)
        pages += 1
        cursor = answer["next_cursor"]
        if not cursor:
            break
    assert seen == expected
    assert pages == 4


def test_a_filter_that_matches_little_looks_at_a_bounded_number_of_jobs_and_says_so(app, redis_client):
    queued = fill(redis_client, 3, state="queued", at=time.time() - 3600)
    fill(redis_client, search.MAX_SCAN + 500, state="done")
    answer = app.get("/ops/api/jobs", params={"state": "queued"}).json
    assert answer["jobs"] == [] and answer["scanned"] == search.MAX_SCAN
    assert answer["more"] is True and answer["next_cursor"]
    assert "narrow the time range" in answer["note"]
    # Going on from the cursor finds them, past the done ones.
    more = app.get("/ops/api/jobs", params={"state": "queued", "cursor": answer["next_cursor"]}).json
    assert ids_of(more) == queued[::-1] and more["more"] is False
    # Or a narrower time range, at once.
    narrow = app.get("/ops/api/jobs", params={"state": "queued", "until": jobs.iso(time.time() - 1800)}).json
    assert ids_of(narrow) == queued[::-1]


def test_expired_jobs_in_the_index_are_skipped(app, redis_client):
    kept, gone = fill(redis_client, 2)
    redis_client.delete(jobs.status_key(gone))
    assert ids_of(app.get("/ops/api/jobs").json) == [kept]


@pytest.mark.parametrize("params, field, words", [
    ({"limit": "0"}, "limit", "from 1 to 500"),
    ({"limit": "501"}, "limit", "from 1 to 500"),
    ({"limit": "many"}, "limit", "whole number"),
    ({"state": "eaten"}, "state", "scheduled, queued"),
    ({"queue": "cenar"}, "queue", "batch, beber, comer"),
    ({"actor": "cenar"}, "actor", "the actors are"),
    ({"since": "yesterday"}, "since", "ISO 8601"),
    ({"until": "-5"}, "until", "between 1970 and 9999"),
    ({"since": "1e300"}, "since", "between 1970 and 9999"),
    ({"since": "nan"}, "since", "between 1970 and 9999"),
    ({"cursor": "17 /1"}, "cursor", "next_cursor"),
    ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since", "starts before it ends"),
    ({"cursor": "abc"}, "cursor", "next_cursor"),
    ({"id": "nope"}, "id", "UUID"),
    ({"item": "x" * 257}, "item", "at most 256"),
    ({"colour": "red"}, "colour", "the parameters are"),
])
def test_bad_search_input_is_a_400_naming_the_field_and_what_it_takes(app, params, field, words):
    answer = app.get("/ops/api/jobs", params=params, status=400).json
    assert answer["error"] == f"bad_{field}" and words in answer["message"], answer
    page = app.get("/ops/jobs", params={**params, "state": params.get("state", "")}, status=400)
    assert words in page.text


def test_the_jobs_page_searches_without_scripts_and_the_nav_box_still_opens_a_job(app, redis_client):
    mine = app.get("/comer/tortilla", status=202).json["job_id"]
    app.get("/beber/cafe", status=202)
    page = app.get("/ops/jobs", params={"item": "tortilla"}, status=200)
    assert mine in page.text and "cafe" not in page.text
    assert f'href="/ops/jobs/{mine}"' in page.text and "state-queued" in page.text
    assert 'name="csrf_token"' in page.text and "/ops/static/jobs.js" in page.text
    listing = app.get("/ops/jobs", status=200)
    assert "tortilla" in listing.text and "cafe" in listing.text
    # The nav box: an id alone goes to its page; not an id, a 400.
    assert app.get("/ops/jobs", params={"id": mine}, status=303).headers["Location"].endswith(f"/ops/jobs/{mine}")
    app.get("/ops/jobs", params={"id": "nope"}, status=400)
    # Next page link.
    fill(redis_client, 3)
    paged = app.get("/ops/jobs", params={"limit": "2"}, status=200)
    assert 'id="next-page"' in paged.text
    nxt = paged.click(linkid="next-page")
    assert nxt.status_int == 200 and "cursor=" in nxt.request.url


def test_search_answers_redis_down_with_503(app, redis_server):
    redis_server.stop()
    answer = app.get("/ops/api/jobs", status=503).json
    assert answer["error"] == "redis_unavailable"


def redis_commands(client, request):
    """How many commands Redis ran for ``request()`` (INFO commandstats; our own left out)."""
    client.config_resetstat()
    request()
    stats = client.info("commandstats")
    return sum(entry["calls"] for name, entry in stats.items()
               # PING: redis-py's health check of a connection idle for 30 s, not the request's.
               if not name.startswith(("cmdstat_config", "cmdstat_info", "cmdstat_ping")))


@pytest.mark.e2e
def test_at_100000_jobs_a_search_and_a_job_page_cost_redis_no_more_commands_than_at_1000(app, redis_client):
    """The cost of a request is bounded by its page size and the scan bound, never by the
    number of jobs: counted in Redis commands, not in time."""
    job_id = app.get("/comer/pan", status=202).json["job_id"]
    requests = {
        "newest 50": lambda: app.get("/ops/api/jobs"),
        "done, 100": lambda: app.get("/ops/api/jobs", params={"state": "done", "limit": "100"}),
        "item pan": lambda: app.get("/ops/api/jobs", params={"item": "pan", "queue": "comer"}),
        "by id": lambda: app.get("/ops/api/jobs", params={"id": job_id}),
        "the jobs page": lambda: app.get("/ops/jobs", params={"actor": "comer"}),
        "a job's page": lambda: app.get(f"/ops/jobs/{job_id}"),
        "a job's JSON": lambda: app.get(f"/ops/api/jobs/{job_id}"),
    }
    sparse = lambda: app.get("/ops/api/jobs", params={"state": "failed"})  # noqa: E731 (matches none)
    # An HMGET per candidate looked at, and a ZREVRANGEBYSCORE per page of them (pages grow
    # from 100 to search.PAGE: at most 1 + MAX_SCAN / 100 of them).
    bound = search.MAX_SCAN + 1 + search.MAX_SCAN // 100

    fill(redis_client, 1000, at=time.time() - 10)
    small = {name: redis_commands(redis_client, request) for name, request in requests.items()}
    small_sparse = redis_commands(redis_client, sparse)
    for n in range(99):
        fill(redis_client, 1000, at=time.time() - 20 - n)
    assert redis_client.zcard(search.INDEX) == 100_001
    large = {name: redis_commands(redis_client, request) for name, request in requests.items()}
    large_sparse = redis_commands(redis_client, sparse)

    assert large == small, (small, large)
    assert max(large.values()) <= 2 * 100 + 1  # a first page of twice the limit, and its ZREVRANGEBYSCORE
    assert small_sparse <= bound and large_sparse <= bound, (small_sparse, large_sparse, bound)
    answer = sparse().json
    assert answer["scanned"] == search.MAX_SCAN and answer["more"] and answer["note"]
