"""Turning HTTP requests into orders: the item, an optional delay, an idempotency key, menus."""
import hashlib
import time
from datetime import datetime

from foodapp.items import BadItem, check_item
from foodapp.jobs import encode

QUEUES = ("comer", "beber")


class BadOrder(ValueError):
    """The request cannot become an order; the message says what to change."""


def delay_ms(params, max_seconds):
    """Milliseconds to hold the job back, from ``?delay=<seconds>`` or ``?eta=<ISO 8601>``."""
    if "delay" in params and "eta" in params:
        raise BadOrder("give either delay (seconds) or eta (a time), not both")
    if "delay" in params:
        try:
            seconds = float(params["delay"])
        except ValueError:
            raise BadOrder(f"delay must be a number of seconds, got {params['delay']!r}") from None
    elif "eta" in params:
        try:
            eta = datetime.fromisoformat(params["eta"].replace("Z", "+00:00"))
        except ValueError:
            raise BadOrder(f"eta must be an ISO 8601 time such as 2026-11-23T18:30:00Z, got {params['eta']!r}") from None
        if eta.tzinfo is None:
            raise BadOrder("eta must say its time zone, e.g. 2026-11-23T18:30:00Z or +01:00")
        seconds = max(0.0, eta.timestamp() - time.time())
    else:
        return None
    if not 0 <= seconds <= max_seconds:
        raise BadOrder(f"the delay must be between 0 and {max_seconds} seconds, got {seconds:g}")
    return int(seconds * 1000)


#: Set by the front proxy on every request it forwards (deploy/haproxy/haproxy.cfg): when a
#: web process dies with a request in its hands, the proxy sends it to another one, and this
#: key makes that second try find the first one's job instead of making another.
PROXY_RETRY_KEY = "X-Foodapp-Retry-Key"
_PROXY_RETRY_ENVIRON = "HTTP_" + PROXY_RETRY_KEY.upper().replace("-", "_")


def idempotency(request, answer, settings):
    """``(key, fingerprint, answer as JSON, ttl)`` for the Idempotency-Key header (or the
    front proxy's retry key, kept only ``orders.proxy_retry_ttl`` seconds), or None."""
    # From the WSGI environ: request.headers builds a header view per read.
    key = request.environ.get("HTTP_IDEMPOTENCY_KEY")
    ttl = settings.orders_idempotency_ttl
    if key is None:
        key = request.environ.get(_PROXY_RETRY_ENVIRON)
        if key is None or not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
            return None
        key, ttl = f"proxy:{key}", settings.orders_proxy_retry_ttl
    elif not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise BadOrder("the Idempotency-Key header must be 1 to 255 printable ASCII characters, e.g. a UUID")
    digest = hashlib.sha256()
    for part in (request.method, request.path_qs, request.body or b""):
        digest.update(part if isinstance(part, bytes) else part.encode("utf-8"))
        digest.update(b"\0")
    return key, digest.hexdigest(), encode(answer), ttl


def menu_items(body, max_items, max_item_length):
    """[(queue, item)] from a POST /menu body: a JSON list of {"comer": ...} or {"beber": ...}."""
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        body = body["items"]
    if not isinstance(body, list) or not body:
        raise BadOrder('the menu must be a non-empty JSON list, e.g. [{"comer": "pan"}, {"beber": "agua"}]')
    if len(body) > max_items:
        raise BadOrder(f"the menu has {len(body)} items; the most one request may order is {max_items}")
    items = []
    for position, entry in enumerate(body):
        if not isinstance(entry, dict) or len(entry) != 1 or next(iter(entry)) not in QUEUES:
            raise BadOrder(f'item {position} must be {{"comer": "<food>"}} or {{"beber": "<drink>"}}, got {entry!r}'[:300])
        queue, item = next(iter(entry.items()))
        if not isinstance(item, str):
            raise BadOrder(f"item {position}: the name must be a string")
        try:
            items.append((queue, check_item(item, max_item_length)))
        except BadItem as error:
            raise BadOrder(f"item {position}: {error}") from None
    return items
