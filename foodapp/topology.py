"""What the Redis deployment looks like from here: master, replicas and their lag, sentinels."""
from concurrent.futures import ThreadPoolExecutor

import redis

from foodapp.jobs import iso
from foodapp.replicas import last_failover, replicas_in


def _replicas(info):
    return [{"address": f"{value.get('ip')}:{value.get('port')}", "state": value.get("state"),
             "lag_seconds": value.get("lag"), "offset": value.get("offset")} for value in replicas_in(info)]


def _sentinel(settings, host, port):
    entry = {"address": f"{host}:{port}", "reachable": False}
    client = redis.Redis(
        host=host, port=port, password=settings.redis_sentinel_password,
        socket_timeout=0.5, socket_connect_timeout=0.5,
    )
    try:
        master = client.sentinel_master(settings.redis_master_name)
        entry.update(
            reachable=True,
            master=f"{master['ip']}:{master['port']}",
            failover_epoch=master.get("config-epoch"),
        )
    except redis.RedisError as error:
        entry["error"] = str(error)
    finally:
        client.close()
    return entry


def sentinel_views(settings):
    # In parallel, with short timeouts: a dead host must not make /readyz slower than the
    # front proxy's health check.
    with ThreadPoolExecutor(len(settings.redis_sentinels)) as pool:
        return list(pool.map(lambda hostport: _sentinel(settings, *hostport), settings.redis_sentinels))


def topology(client, settings, required_replicas):
    """Return (ready, reason, topology). Raises redis.RedisError when the master is gone.

    Ready means an enqueue can be acknowledged now: we talk to a master and it has the
    ``required_replicas`` online that an enqueue waits for (see foodapp/replicas.py).
    """
    info = client.info("replication")
    connection = client.connection_pool.get_connection("INFO")
    try:
        address = f"{connection.host}:{connection.port}"
    finally:
        client.connection_pool.release(connection)
    seen = {
        "master": address,
        "role": info.get("role"),
        "replicas": _replicas(info),
    }
    if settings.redis_sentinels:
        seen["sentinels"] = sentinel_views(settings)
        failover = last_failover(client)
        seen["last_failover"] = failover and {**failover, "at": iso(failover["at"])}

    if info.get("role") != "master":
        return False, f"{address} is a {info.get('role')}, not the master", seen
    online = [r for r in seen["replicas"] if r["state"] == "online"]
    seen["enqueue_waits_for_replicas"] = required_replicas
    if len(online) < required_replicas:
        return False, f"enqueues wait for {required_replicas} replica(s) and {len(online)} are online", seen
    return True, "ok", seen
