"""The bar: the ``beber`` queue, one actor that drinks what was ordered."""
from actors import actor, ledger


@actor(queue_name="beber")
def beber(drink):
    """Drink ``drink``: prepare it, then write it in the ledger (once per job)."""
    ledger.prepare()
    return ledger.record("beber", drink)
