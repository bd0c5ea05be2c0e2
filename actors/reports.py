"""Reports on the ``batch`` queue: what has been eaten and drunk, and who should stop."""
from dramatiq import get_broker

from actors import actor, ledger


@actor(queue_name="batch")
def report():
    """Summarise the ledger; warn, as the seed does, when there were too many martinis."""
    broker = get_broker()
    totals = {"comer": {}, "beber": {}}
    for field, count in broker.client.hgetall(ledger.TOTALS).items():
        queue, _, item = field.decode().partition(":")
        totals.setdefault(queue, {})[item] = int(count)

    limit = broker.settings.reports_martini_limit
    martinis = totals["beber"].get("martini", 0)
    warnings = []
    if martinis > limit:
        warnings.append(
            f"Too many martinis: {martinis} (the limit is {limit}). "
            "Somebody should leave the martinis and eat more pimientos!"
        )
    # At most reports.max_items items per queue, the most ordered first: the totals grow
    # with every new name anybody orders, and the result is stored and served whole.
    cap = broker.settings.reports_max_items
    shown, omitted, notes = {}, {}, []
    for queue in ("comer", "beber"):
        top = sorted(totals[queue].items(), key=lambda entry: (-entry[1], entry[0]))[:cap]
        shown[queue] = dict(sorted(top))
        omitted[queue] = len(totals[queue]) - len(top)
        if omitted[queue]:
            notes.append(f"{queue}: {omitted[queue]} more items ordered less often are not listed "
                         f"(reports.max_items is {cap})")
    return {
        "eaten": sum(totals["comer"].values()),
        "drunk": sum(totals["beber"].values()),
        "comer": shown["comer"],
        "beber": shown["beber"],
        "omitted": omitted,
        "notes": notes,
        "warnings": warnings,
    }
