"""A test-only actor for the workers: it kills the worker process running it, every time.

Loaded by the real workers as an extra module: `dramatiq foodapp.worker tests.poison_actors`.
"""
import os
import signal

import dramatiq


def poison(item):
    os.kill(os.getpid(), signal.SIGKILL)


dramatiq.Actor(poison, broker=dramatiq.get_broker(), actor_name="poison", queue_name="comer", priority=0, options={})
