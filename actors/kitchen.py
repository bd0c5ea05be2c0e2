"""The kitchen: the ``comer`` queue, one actor that eats what was ordered."""
from actors import actor, ledger


@actor(queue_name="comer")
def comer(food):
    """Eat ``food``: prepare it, then write it in the ledger (once per job)."""
    ledger.prepare()
    return ledger.record("comer", food)
