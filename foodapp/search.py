"""Recent jobs for the console: an index to search them, and an operator's actions on them.

The index (written by enqueue.lua, in the same call that stores a new job: no extra round
trip) is three kinds of sorted sets of job ids scored by enqueue time (epoch seconds):

- ``foodapp:index:jobs``: every job;
- ``foodapp:index:actor:<sha1 of the actor>`` and ``foodapp:index:item:<sha1 of the
  item>``: a job's actor, and its item (its first argument, when that is a string of at
  most ``MAX_ITEM`` characters). Hashed, so any item makes a safe key name.

Each expires ``jobs.status_ttl`` after its last write, and is trimmed, in about one write
in 64 (``broker.INDEX_TRIM_EVERY``: trimming was most of what the index cost Redis per
order), to the jobs of the last ``jobs.status_ttl`` seconds (older statuses are gone anyway,
and a search skips them) and to the ``ops.index_max_jobs`` most recent. So memory is
bounded, never ``KEYS`` or ``SCAN``.

A search reads candidates from the narrowest index that fits (item, else actor, else all),
newest first, within the time range, and checks each against the other filters with the
job's status (HMGET, pipelined per page of candidates). It looks at ``MAX_SCAN`` candidates
at most per request, and says so (``scanned``, ``more``, a ``next_cursor`` to go on from):
the cost of a search does not grow with the number of jobs.

Actions (``act``): cancel (scheduled, queued or retrying: it never runs), run now
(scheduled or retrying: it runs at once, once), retry (dead or failed: from the dead letters
back to its queue). Each is one atomic script (foodapp/lua/jobaction.lua) per job; a list
of jobs is done in at most three round trips, however long (``MAX_BULK`` at most).
"""
import functools
import hashlib
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from foodapp import jobs

INDEX = "foodapp:index:jobs"
INDEX_PREFIX = "foodapp:index:"
#: The longest item indexed (characters); longer first arguments are not items.
MAX_ITEM = 256
#: Most candidates one search request checks.
MAX_SCAN = 5000
#: Most candidates read per page when filters beyond the index must be checked.
PAGE = 500
DEFAULT_LIMIT, MAX_LIMIT = 50, 500
#: The last second of the year 9999: later times are refused.
LATEST = 253402300799
#: A score as Redis writes it in a cursor.
_SCORE = re.compile(r"-?[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?")
#: Most jobs one bulk action takes.
MAX_BULK = 1000
ACTIONS = ("cancel", "run-now", "retry")
#: The status fields a search row shows.
FIELDS = ("state", "queue", "actor", "args", "enqueued_at", "started_at", "finished_at", "eta", "error", "retries")

_scripts = {}


@functools.lru_cache(maxsize=4096)
def index_key(kind, value):
    """The index of one actor or item: hashed, so any string makes a safe key name."""
    return f"{INDEX_PREFIX}{kind}:{hashlib.sha1(value.encode('utf-8'), usedforsecurity=False).hexdigest()}"


def item_of(args):
    """A job's item: its first argument, if that is a string of 1 to MAX_ITEM characters."""
    if args and isinstance(args[0], str) and 0 < len(args[0]) <= MAX_ITEM:
        return args[0]
    return None


def index_keys(actor, item):
    """enqueue.lua's index keys for a job: all, its actor's, its item's (unused without one)."""
    return [INDEX, index_key("actor", actor), index_key("item", item or "")]


class BadQuery(ValueError):
    """A search or action parameter the API cannot use: ``field`` names it."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Query:
    id: str | None = None
    item: str | None = None
    actor: str | None = None
    queue: str | None = None
    state: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = DEFAULT_LIMIT
    cursor: tuple | None = None  # (score as Redis wrote it, how many of that score were seen)

    def params(self):
        """The query as URL parameters (for links to the next page)."""
        values = {"id": self.id, "item": self.item, "actor": self.actor, "queue": self.queue, "state": self.state,
                  "since": jobs.iso(self.since) if self.since is not None else None,
                  "until": jobs.iso(self.until) if self.until is not None else None}
        values = {name: value for name, value in values.items() if value}
        if self.limit != DEFAULT_LIMIT:
            values["limit"] = str(self.limit)
        return values


def parse_time(raw, field):
    """ISO 8601 (UTC when no zone is given) or epoch seconds, to epoch seconds."""
    text = str(raw).strip()
    try:
        value = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise BadQuery(field, f"{field} must be a time, ISO 8601 (2026-11-23T09:47:40Z; UTC when no zone is "
                                  f"given) or epoch seconds, got {text[:60]!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        value = moment.timestamp()
    if not math.isfinite(value) or not 0 <= value <= LATEST:
        raise BadQuery(field, f"{field} must be a time between 1970 and 9999, got {text[:60]!r}")
    return value


def parse_cursor(raw):
    score, _, seen = str(raw).partition("/")
    try:
        if not _SCORE.fullmatch(score) or not math.isfinite(float(score)) or not seen.isdigit() \
                or int(seen) > 10 ** 6:
            raise ValueError
    except ValueError:
        raise BadQuery("cursor", "cursor must be the next_cursor of an earlier answer, as it was given") from None
    return score, int(seen)


def parse_query(params, broker):
    """A Query from request parameters (strings; missing or empty ones are not filters).

    Raises BadQuery naming the field and what it takes."""
    def get(name):
        value = params.get(name)
        if value is None:
            return None
        value = str(value).strip()
        return value or None

    known = {"id", "item", "actor", "queue", "state", "since", "until", "limit", "cursor"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise BadQuery(unknown[0], f"there is no search parameter {unknown[0]!r}; the parameters are "
                                   f"{', '.join(sorted(known))}")
    job_id = get("id")
    if job_id is not None and not is_uuid(job_id):
        raise BadQuery("id", f"id must be a job id (a UUID, as the 202 gave), got {job_id[:60]!r}")
    item = params.get("item")
    item = None if item is None or str(item) == "" else str(item)
    if item is not None and len(item) > MAX_ITEM:
        raise BadQuery("item", f"item is {len(item)} characters long; items are at most {MAX_ITEM}")
    actor = get("actor")
    if actor is not None and actor not in broker.actors:
        raise BadQuery("actor", f"there is no actor {actor[:60]!r}; the actors are {', '.join(sorted(broker.actors))}")
    queue = get("queue")
    queues = sorted(name for name in broker.queues if not name.endswith((".DQ", ".XQ")))
    if queue is not None and queue not in queues:
        raise BadQuery("queue", f"there is no queue {queue[:60]!r}; the queues are {', '.join(queues)}")
    state = get("state")
    if state is not None and state not in jobs.STATES:
        raise BadQuery("state", f"there is no state {state[:60]!r}; the states are {', '.join(jobs.STATES)}")
    since = parse_time(get("since"), "since") if get("since") else None
    until = parse_time(get("until"), "until") if get("until") else None
    if since is not None and until is not None and since > until:
        raise BadQuery("since", "since is after until: give a range that starts before it ends")
    limit = get("limit")
    if limit is None:
        limit = DEFAULT_LIMIT
    else:
        try:
            limit = int(limit)
        except ValueError:
            raise BadQuery("limit", f"limit must be a whole number from 1 to {MAX_LIMIT}, got {limit[:60]!r}") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise BadQuery("limit", f"limit must be from 1 to {MAX_LIMIT}, got {limit}")
    cursor = parse_cursor(get("cursor")) if get("cursor") else None
    return Query(id=job_id, item=item, actor=actor, queue=queue, state=state, since=since, until=until,
                 limit=limit, cursor=cursor)


def is_uuid(value):
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def _row(job_id, values):
    """A search result from a status's FIELDS (None when the status expired)."""
    if values[0] is None:
        return None
    row = {"job_id": job_id}
    for name, value in zip(FIELDS, values):
        if value is None:
            continue
        value = value.decode()
        if name in ("enqueued_at", "started_at", "finished_at", "eta"):
            value = jobs.iso(value) if value else None
        elif name == "args":
            value = json.loads(value)
        elif name == "retries":
            value = int(value)
        row[name] = value
    row["item"] = item_of(row.get("args") or [])
    return row


def _matches(query, row, score=None):
    if row is None:
        return False
    if query.state and row["state"] != query.state:
        return False
    if query.queue and row.get("queue") != query.queue:
        return False
    if query.actor and row.get("actor") != query.actor:
        return False
    if query.item is not None and row["item"] != query.item:
        return False
    if score is None and (query.since is not None or query.until is not None):
        # By id: the time range is checked against the status, not the index.
        enqueued = datetime.fromisoformat(row["enqueued_at"]).timestamp() if row.get("enqueued_at") else None
        if enqueued is None or (query.since is not None and enqueued < query.since) or \
                (query.until is not None and enqueued > query.until):
            return False
    return True


def _score_text(raw):
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def search(client, query, max_scan=MAX_SCAN):
    """Jobs matching ``query``, newest first: {"jobs", "count", "scanned", "more",
    "next_cursor", "note"}. Bounded: at most ``max_scan`` candidates, in pages."""
    if query.id:
        row = _row(query.id, client.hmget(jobs.status_key(query.id), FIELDS))
        found = [row] if _matches(query, row) else []
        return {"jobs": found, "count": len(found), "scanned": 1, "more": False, "next_cursor": None, "note": None}

    if query.item is not None:
        key = index_key("item", query.item)
    elif query.actor:
        key = index_key("actor", query.actor)
    else:
        key = INDEX
    # Filters the index does not answer: candidates are read a page at a time, else as
    # many as are still wanted (expired statuses aside, each is a result).
    filtered = bool(query.state or query.queue or (query.item is not None and query.actor))
    high = query.cursor[0] if query.cursor else ("+inf" if query.until is None else repr(query.until))
    low = "-inf" if query.since is None else repr(query.since)
    score, seen = query.cursor if query.cursor else (None, 0)
    found, scanned, exhausted = [], 0, False
    page = min(PAGE, max(2 * query.limit, 100))  # filtered: pages grow from twice the limit to PAGE
    while len(found) < query.limit and scanned < max_scan:
        wanted = min(page if filtered else query.limit - len(found), max_scan - scanned)
        page = min(PAGE, page * 2)
        candidates = client.zrevrangebyscore(key, high, low, start=seen if score == high else 0, num=wanted,
                                             withscores=True, score_cast_func=_score_text)
        if not candidates:
            exhausted = True
            break
        with client.pipeline(transaction=False) as pipe:
            for member, _ in candidates:
                pipe.hmget(jobs.status_key(member.decode()), FIELDS)
            rows = pipe.execute()
        for (member, member_score), values in zip(candidates, rows):
            scanned += 1
            if member_score == score:
                seen += 1
            else:
                score, seen = member_score, 1
            row = _row(member.decode(), values)
            if _matches(query, row, member_score):
                found.append(row)
                if len(found) == query.limit:
                    break
        else:
            if len(candidates) < wanted:
                exhausted = True
                break
        high = score
    more = not exhausted
    note = None
    if more and len(found) < query.limit:
        note = (f"looked at the {scanned} most recent candidates (at most {max_scan} per request) and more may "
                "match: narrow the time range (since, until) or go on with next_cursor")
    return {"jobs": found, "count": len(found), "scanned": scanned, "more": more,
            "next_cursor": f"{score}/{seen}" if more and score is not None else None, "note": note}


# --- actions -----------------------------------------------------------------------------

class Outcome(dict):
    """One job's answer to an action: job_id, ok, status (200, 404, 409), state, message."""


def _script(client):
    script = _scripts.get(id(client))
    if script is None or script[0] is not client:
        script = _scripts[id(client)] = (client, client.register_script(jobs.lua("jobaction")))
    return script[1]


_ALLOWED = {"cancel": "a scheduled, queued or retrying job can be cancelled",
            "run-now": "a scheduled or retrying job can be run now",
            "retry": "a dead or failed job can be retried"}


def _refusal(action, job_id, state, detail=None):
    if not state:
        return Outcome(job_id=job_id, ok=False, status=404, state=None,
                       message=f"no job {job_id}: unknown, or its status expired")
    if detail:
        return Outcome(job_id=job_id, ok=False, status=409, state=state, message=detail)
    why = {"running": "it is running: a worker has it already; let it finish"}.get(
        state, "it is " + state)
    verb = {"cancel": "cancelled", "run-now": "run now", "retry": "retried"}[action]
    return Outcome(job_id=job_id, ok=False, status=409, state=state,
                   message=f"job {job_id} cannot be {verb}: {why}; only {_ALLOWED[action]}")


def _new_message(data, rid, queue_name, retry):
    """The message to queue (decoded from Redis ``data``): no eta, a new redis message id;
    for a retry, its retries start again at 0."""
    from dramatiq import Message

    message = Message.decode(data)
    extra = {"redis_message_id": rid, **({"retries": 0} if retry else {})}
    message = message.copy(queue_name=queue_name, options=extra)
    for option in ("eta", *(("traceback",) if retry else ())):
        message.options.pop(option, None)
    return message.encode()


def act(broker, action, job_ids, by, bulk=False, via=None, replicas=None):
    """Do ``action`` to each of ``job_ids`` (unique, at most MAX_BULK); ``by`` (and ``via``,
    what the action was done through, if not the console) goes in each job's timeline. A
    list of Outcome, in order, and how many replicas confirmed (None without replicas).
    ``replicas``: how many the changes wait for; by default what the replica policy asks,
    and nothing is sent when the master has fewer online (durable.TooFewReplicas). Raises
    redis errors (nothing, or part, was done: each job's change is atomic and can be asked
    again)."""
    if action not in ACTIONS:
        raise BadQuery("action", f"there is no action {str(action)[:40]!r}; the actions are {', '.join(ACTIONS)}")
    client, ns, ttl = broker.client, broker.namespace, broker.settings.jobs_status_ttl
    at = jobs.now()
    event = jobs.encode({"event": {"cancel": "cancelled", "run-now": "run now", "retry": "retried"}[action],
                         "at": at, "by": by, **({"bulk": True} if bulk else {}), **({"via": via} if via else {})})
    plans = {}  # job id -> (keys, args) for jobaction.lua, or an Outcome already
    if action == "cancel":
        for job_id in job_ids:
            plans[job_id] = ([jobs.status_key(job_id), jobs.events_key(job_id)], [action, ttl, event, at])
    else:
        # What each job's message is now: its delayed copy (run now), its dead letter (retry).
        with client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(jobs.status_key(job_id))
            statuses = pipe.execute()
        wanted = []  # (job id, state, queue, source hash, [rids])
        for job_id, status in zip(job_ids, statuses):
            state = status.get(b"state", b"").decode() or None
            queue = status.get(b"queue", b"").decode()
            if action == "run-now":
                delayed = status.get(b"delayed")
                if state in ("scheduled", "retrying") and not delayed:
                    plans[job_id] = _refusal(action, job_id, state, f"job {job_id} was scheduled before \"run now\" "
                                             "existed (its status has no delayed message id): it runs at its eta")
                    continue
                rids = [delayed.decode()] if delayed else []
                source = f"{ns}:{queue}.DQ.msgs"
            else:
                rids = sorted(key.decode()[7:] for key in status if key.startswith(b"stored:"))
                source = f"{ns}:{queue}.XQ.msgs"
            if state not in (("scheduled", "retrying") if action == "run-now" else ("dead", "failed")) or not rids:
                plans[job_id] = _refusal(action, job_id, state)
                continue
            wanted.append((job_id, state, queue, source, rids))
        with client.pipeline(transaction=False) as pipe:
            for _, _, _, source, rids in wanted:
                pipe.hmget(source, rids)
            bodies = pipe.execute() if wanted else []
        for (job_id, state, queue, source, rids), datas in zip(wanted, bodies):
            held = [(rid, data) for rid, data in zip(rids, datas) if data is not None]
            if not held:
                where = ("its delayed message is gone (it is coming due now): look again in a moment"
                         if action == "run-now" else "its dead letter is gone (requeued, deleted, or older than "
                         "jobs.dead_letter_ttl): order it again")
                plans[job_id] = _refusal(action, job_id, state, f"job {job_id} is {state} but {where}")
                continue
            current, data = held[-1]
            rid = str(uuid.uuid4())
            keys = [jobs.status_key(job_id), jobs.events_key(job_id), f"{ns}:{queue}", f"{ns}:{queue}.msgs"]
            if action == "retry":
                keys += [f"{ns}:{queue}.XQ", f"{ns}:{queue}.XQ.msgs"]
            plans[job_id] = (keys, [action, ttl, event, at, current, rid,
                                    _new_message(data, rid, queue, retry=action == "retry")])

    script = _script(client)
    todo = [(job_id, plan) for job_id, plan in plans.items() if not isinstance(plan, Outcome)]
    confirmed = None
    replies = []
    if todo:
        if replicas is None:
            replicas = broker.replicas.for_write()
        with client.pipeline(transaction=False) as pipe:
            for _, (keys, args) in todo:
                script(keys=keys, args=args, client=pipe)
            if replicas:
                pipe.execute_command("WAIT", replicas, broker.settings.enqueue_replica_timeout_ms)
            replies = pipe.execute()
        if replicas:
            confirmed = replies.pop()
    answers = dict(zip([job_id for job_id, _ in todo], replies))
    outcomes = []
    for job_id in job_ids:
        plan = plans[job_id]
        if isinstance(plan, Outcome):
            outcomes.append(plan)
            continue
        made, state = answers[job_id][0], answers[job_id][1].decode() or None
        if made:
            done = {"cancel": "cancelled: it will not run", "run-now": "queued to run now",
                    "retry": "back in its queue: it runs again"}[action]
            outcomes.append(Outcome(job_id=job_id, ok=True, status=200, state=state, message=f"job {job_id} {done}"))
        else:
            outcomes.append(_refusal(action, job_id, state, None if action == "cancel" or not state or state not in (
                ("scheduled", "retrying") if action == "run-now" else ("dead", "failed")) else
                f"job {job_id} changed while this was being done ({action}): look at it again"))
    return outcomes, (confirmed if replicas else None)


def check_ids(raw, field="ids"):
    """Job ids for a bulk action: a list of 1 to MAX_BULK UUIDs, duplicates dropped."""
    if not isinstance(raw, list) or not raw:
        raise BadQuery(field, f"{field} must be a non-empty list of job ids (at most {MAX_BULK})")
    if len(raw) > MAX_BULK:
        raise BadQuery(field, f"{field} holds {len(raw)} job ids; at most {MAX_BULK} per request: split them")
    for value in raw:
        if not isinstance(value, str) or not is_uuid(value):
            raise BadQuery(field, f"{field} must hold job ids (UUIDs), got {str(value)[:60]!r}")
    return list(dict.fromkeys(raw))
