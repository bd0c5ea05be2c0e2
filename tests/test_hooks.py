"""FoodBroker calls only the middleware hooks a middleware defines (broker.py), in
Dramatiq's order: "before" hooks first to last, "after" hooks last to first; a middleware
added later is called too; a failing hook is logged, a MiddlewareError stops the rest."""
import pytest
from dramatiq.middleware import Middleware, SkipMessage


class Recorder(Middleware):
    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def before_enqueue(self, broker, message, delay):
        self.calls.append(("before", self.name))

    def after_enqueue(self, broker, message, delay):
        self.calls.append(("after", self.name))


class Broken(Middleware):
    def before_enqueue(self, broker, message, delay):
        raise RuntimeError("broken on purpose")


class Skipping(Middleware):
    def before_enqueue(self, broker, message, delay):
        raise SkipMessage("skip")


def test_hooks_run_in_dramatiqs_order_and_later_middleware_joins(broker):
    calls = []
    broker.add_middleware(Recorder("a", calls))
    broker.add_middleware(Broken())
    broker.add_middleware(Recorder("b", calls))
    broker.emit_before("enqueue", None, None)
    broker.emit_after("enqueue", None, None)
    assert calls == [("before", "a"), ("before", "b"), ("after", "b"), ("after", "a")]

    calls.clear()
    broker.add_middleware(Recorder("c", calls))
    broker.emit_before("enqueue", None, None)
    assert calls == [("before", "a"), ("before", "b"), ("before", "c")]

    broker.add_middleware(Skipping())
    with pytest.raises(SkipMessage):
        broker.emit_before("enqueue", None, None)
