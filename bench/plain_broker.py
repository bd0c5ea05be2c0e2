"""The baseline: plain Dramatiq on Redis, default middleware minus Prometheus, no foodapp.

Dramatiq's own RedisBroker settings, from the environment when a figure tunes them (the
worker kill -9 figure gives plain Dramatiq foodapp's heartbeat timeout and runs its
dead-worker maintenance on every fetch); unset, they are Dramatiq's defaults.
"""
import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Prometheus, default_middleware

from bench import probes

tuning = {option: int(os.environ[variable])
          for option, variable in (("heartbeat_timeout", "BENCH_PLAIN_HEARTBEAT_TIMEOUT_MS"),
                                   ("maintenance_chance", "BENCH_PLAIN_MAINTENANCE_CHANCE"))
          if os.environ.get(variable)}
broker = RedisBroker(url=os.environ["BENCH_REDIS_URL"],
                     middleware=[m() for m in default_middleware if m is not Prometheus], **tuning)
dramatiq.set_broker(broker)
probes.declare(broker)
