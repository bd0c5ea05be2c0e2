"""The bench's actors on foodapp's broker: `dramatiq foodapp.worker bench.foodapp_actors`."""
import dramatiq

from bench import probes

probes.declare(dramatiq.get_broker())
