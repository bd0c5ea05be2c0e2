"""An idle worker's pickup: after a fetch that emptied its queue, the consumer waits on the
wake list (BLPOP, the fetch pipelined behind it) instead of fetching again first; what came
meanwhile left a wake token, and what came without one still runs within an idle wait."""
from foodapp import queues
from foodapp.consumer import FifoConsumer
from tests.servers import wait_until


def _blpops(client):
    return client.info("commandstats").get("cmdstat_blpop", {}).get("calls", 0)


def _done(app, job):
    return app.get(job["status_url"]).json["state"] == "done"


def test_after_emptying_its_queue_the_consumer_waits_for_a_wake_token_not_a_fetch(app, broker, worker,
                                                                                   redis_client, monkeypatch):
    wait_until(lambda: _blpops(redis_client) >= 1, 10, "the idle worker to wait on its wake list")
    fetches = []
    fetch = FifoConsumer._fetch
    monkeypatch.setattr(FifoConsumer, "_fetch",
                        lambda self, count: fetches.append(self.queue_name) or fetch(self, count))
    for _ in range(5):
        job = app.get("/comer/pan", status=202).json
        wait_until(lambda: _done(app, job), 10, "the job to run")
    assert "comer" not in fetches, "a direct fetch after the queue was emptied"
    assert redis_client.llen("dramatiq:comer") == 0


def test_a_message_back_in_its_queue_without_a_wake_token_runs_within_an_idle_wait(app, broker, worker,
                                                                                   redis_client):
    # As the sweep gives a dead worker's jobs back: LPUSH, no token. Made here by pausing the
    # queue, ordering, dropping the tokens, and lifting the pause without queues.resume.
    queues.pause(broker, "comer", "test")
    job = app.get("/comer/pan", status=202).json
    wait_until(lambda: redis_client.llen("dramatiq:comer") == 1, 10, "the order to wait in its paused queue")
    redis_client.delete("dramatiq:comer.wake")
    redis_client.hdel(queues.PAUSED, "comer")
    wait_until(lambda: _done(app, job), 10, "the job to run")
