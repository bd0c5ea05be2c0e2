"""The Dramatiq actors of foodapp and the queues they run on.

Actors are plain functions marked with ``@actor(queue_name=...)``; ``declare(broker)``
turns them into Dramatiq actors on a given broker. Declaring them at configuration time,
not at import time, lets the web app, the workers and the tests each bind them to the
broker built from their own ini file.
"""
import dramatiq

#: The queues, each declared in every process (the dashboard lists only declared queues).
QUEUES = ("comer", "beber", "batch")

_actors = []


def actor(*, queue_name, **options):
    """Mark a function as an actor on ``queue_name``; options are Dramatiq's."""
    if queue_name not in QUEUES:
        raise ValueError(f"unknown queue {queue_name!r}; the queues are {', '.join(QUEUES)}")

    def mark(fn):
        _actors.append((fn, queue_name, options))
        return fn
    return mark


def declare(broker):
    """Declare every queue, and every actor of this package, on ``broker``."""
    from actors import bar, kitchen, reports  # noqa: F401  (each registers its actors)

    for queue_name in QUEUES:
        broker.declare_queue(queue_name)
    for fn, queue_name, options in _actors:
        dramatiq.Actor(
            fn, broker=broker, actor_name=fn.__name__, queue_name=queue_name,
            priority=options.get("priority", 0),
            options={k: v for k, v in options.items() if k != "priority"},
        )
