"""Orders: /comer/<food>, /beber/<drink>, POST /menu and POST /reports queue jobs, answer 202."""
import json
import time

from pyramid.view import view_config

from foodapp import series
from foodapp.broker import EnqueueUnavailable, IdempotencyConflict, Replay
from foodapp.items import BadItem, check_item
from foodapp.job_ids import message_for, new_job_id
from foodapp.metrics import ENQUEUE_LATENCY
from foodapp.orders import BadOrder, delay_ms, idempotency, menu_items
from foodapp.urls import public_url
from foodapp.views import json_error, json_response


def status_url(request, job_id):
    """The job's status URL (app.public_url, or relative; never from the Host header).
    Its first part depends only on the app's settings and routes: built once per app."""
    prefix = getattr(request.registry, "_status_url_prefix", None)
    if prefix is None:
        prefix = request.registry._status_url_prefix = public_url(request, "job", job_id="-")[:-1]
    # Dramatiq's job ids are UUIDs: nothing in them needs quoting.
    return prefix + job_id


def order_delay(request, settings):
    """delay_ms of the query string; an order without one does not parse it (request.GET)."""
    return delay_ms(request.GET, settings.orders_max_delay_seconds) if request.query_string else None


def job_answer(request, message):
    body = {"job_id": message.message_id, "queue": message.queue_name.removesuffix(".DQ"),
            "status_url": status_url(request, message.message_id)}
    if message.args:
        body["item"] = message.args[0]
    return body


def enqueue(request, orders, answer, batch_id=None):
    """Store the (message, delay) orders and answer 202 with ``answer``, idempotently."""
    began = time.perf_counter()
    try:
        try:
            request.registry.broker.enqueue_many(orders, idempotency=idempotency(request, answer, request.registry.foodapp),
                                                 batch_id=batch_id)
        finally:
            # ENQUEUE_LATENCY.time(), without its timer object and context manager.
            ENQUEUE_LATENCY.observe(time.perf_counter() - began)
    except EnqueueUnavailable as unavailable:
        # Counted for the console's chart: in Redis at once when Redis answered (a replica's
        # acknowledgement timed out), else kept in this process until the next write.
        series.enqueue_refused(request.registry.broker.client, redis_answered=unavailable.maybe_stored)
        if not unavailable.maybe_stored:
            raise  # nothing was stored: errors.enqueue_unavailable says so
        return outcome_unknown(request, unavailable, answer)
    except Replay as replay:
        answer = json.loads(replay.answer)
        return json_response(202, answer, Location=answer.get("status_url", ""), **{"Idempotent-Replayed": "true"})
    except IdempotencyConflict as conflict:
        return json_error(
            422, "idempotency_key_reused",
            f"the Idempotency-Key {conflict.key!r} was already used for a different request; "
            "use a new key for a new order",
        )
    series.flush_refused(request.registry.broker.client)  # no command unless 503s wait to be counted
    return json_response(202, answer, Location=answer["status_url"])


def outcome_unknown(request, unavailable, answer):
    """503 that tells the truth: the job may have been stored, and which job it is.

    A client that sent no Idempotency-Key and sends again may get a second job; one that
    sends again with the same key gets this job's answer, never a second job.
    """
    if unavailable.replayed is not None:
        answer = json.loads(unavailable.replayed)  # the earlier request with this key
    again = ("send it again with the same Idempotency-Key: that never makes a second job"
             if request.headers.get("Idempotency-Key") else
             "do not simply send it again (that could make a second job): check its status_url first "
             "(404 means it was not stored), or send requests with an Idempotency-Key header")
    body = {
        "error": "outcome_unknown",
        "message": f"the outcome is unknown: a Redis master stored the order but it was not confirmed "
                   f"({unavailable.reason}), so it may run, or be lost if the master fails; {again}",
        **answer,
    }
    return json_response(503, body, **{"Retry-After": str(unavailable.retry_after)})


def scheduled(request, message, delay):
    answer = job_answer(request, message)
    if delay is not None:
        answer["delay_seconds"] = delay / 1000
    return answer


@view_config(route_name="order", request_method=("GET", "POST"))
def order(request):
    """Queue one item for the queue named in the URL: comer (food) or beber (drink)."""
    settings = request.registry.foodapp
    queue = request.matchdict["queue"]
    try:
        item = check_item(request.matchdict["item"], settings.orders_max_item_length)
        delay = order_delay(request, settings)
    except (BadItem, BadOrder) as error:
        return json_error(400, "bad_item" if isinstance(error, BadItem) else "bad_order", str(error))
    message = message_for(request.registry.broker.get_actor(queue), item)
    try:
        return enqueue(request, [(message, delay)], scheduled(request, message, delay))
    except BadOrder as error:
        return json_error(400, "bad_order", str(error))


@view_config(route_name="order_without_item")
def order_without_item(request):
    queue = request.matchdict["queue"]
    example = "platano" if queue == "comer" else "riojita"
    return json_error(400, "bad_item", f"the item name is empty: put it in the URL, e.g. /{queue}/{example}")


@view_config(route_name="menu", request_method="POST")
def menu(request):
    """Queue a whole menu in one step: every item is stored, or none is."""
    settings = request.registry.foodapp
    if request.content_type != "application/json":
        return json_error(415, "bad_content_type", "send the menu as JSON, with Content-Type: application/json")
    try:
        body = json.loads(request.body or b"null")
    except ValueError as error:
        return json_error(400, "bad_json", f"the body is not valid JSON: {error}")
    except RecursionError:
        return json_error(
            400, "bad_json",
            "the body is nested too deeply to read: a menu is a flat list of objects, "
            'e.g. [{"comer": "pimiento"}, {"beber": "rioja"}]',
        )
    try:
        items = menu_items(body, settings.orders_max_batch, settings.orders_max_item_length)
        delay = order_delay(request, settings)
    except BadOrder as error:
        return json_error(400, "bad_order", str(error))
    messages = [message_for(request.registry.broker.get_actor(queue), item) for queue, item in items]
    batch_id = new_job_id()
    answer = {
        "batch_id": batch_id,
        "status_url": public_url(request, "batch", batch_id=batch_id),
        "jobs": [scheduled(request, message, delay) for message in messages],
    }
    try:
        return enqueue(request, [(message, delay) for message in messages], answer, batch_id=batch_id)
    except BadOrder as error:
        return json_error(400, "bad_order", str(error))


@view_config(route_name="reports", request_method="POST")
def report(request):
    """Queue a ledger report on the batch queue; its result appears at the status URL."""
    message = message_for(request.registry.broker.get_actor("report"))
    try:
        return enqueue(request, [(message, None)], job_answer(request, message))
    except BadOrder as error:
        return json_error(400, "bad_order", str(error))
