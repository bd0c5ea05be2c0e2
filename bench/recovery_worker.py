"""The slow actor on the worker's broker, whichever module set it up before this one:
`dramatiq foodapp.worker bench.recovery_worker` or `dramatiq bench.plain_broker bench.recovery_worker`.
"""
import dramatiq

from bench import recovery_actors

recovery_actors.declare(dramatiq.get_broker())
