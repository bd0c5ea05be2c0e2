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
    return {
        "eaten": sum(totals["comer"].values()),
        "drunk": sum(totals["beber"].values()),
        "comer": dict(sorted(totals["comer"].items())),
        "beber": dict(sorted(totals["beber"].items())),
        "warnings": warnings,
    }
