"""The baseline: plain Dramatiq on Redis, default middleware minus Prometheus, no foodapp."""
import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Prometheus, default_middleware

from bench import probes

broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"],
                     middleware=[m() for m in default_middleware if m is not Prometheus])
dramatiq.set_broker(broker)
probes.declare(broker)
