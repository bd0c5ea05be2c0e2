"""Orders: /comer/<food> and /beber/<drink> queue a job and answer 202 with its status URL."""
from pyramid.view import view_config

from foodapp.items import BadItem, check_item
from foodapp.views import json_error, json_response


def accepted(request, message):
    status_url = request.route_url("job", job_id=message.message_id)
    body = {"job_id": message.message_id, "queue": message.queue_name.removesuffix(".DQ"), "status_url": status_url}
    if message.args:
        body["item"] = message.args[0]
    return json_response(202, body, Location=status_url)


@view_config(route_name="order", request_method=("GET", "POST"))
def order(request):
    """Queue one item for the queue named in the URL: comer (food) or beber (drink)."""
    queue = request.matchdict["queue"]
    try:
        item = check_item(request.matchdict["item"], request.registry.foodapp.orders_max_item_length)
    except BadItem as error:
        return json_error(400, "bad_item", str(error))
    message = request.broker.get_actor(queue).send(item)
    return accepted(request, message)


@view_config(route_name="order_without_item")
def order_without_item(request):
    queue = request.matchdict["queue"]
    example = "platano" if queue == "comer" else "riojita"
    return json_error(400, "bad_item", f"the item name is empty: put it in the URL, e.g. /{queue}/{example}")


@view_config(route_name="reports", request_method="POST")
def report(request):
    """Queue a ledger report on the batch queue; its result appears at the status URL."""
    return accepted(request, request.broker.get_actor("report").send())
