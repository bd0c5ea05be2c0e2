"""A web process's memory does not grow with the number of orders it answered.

Found by the soak: web processes grew about 10 % in 30 minutes. Pyramid's route_path keeps
every path segment it ever quoted (pyramid.traversal._segment_cache, never trimmed), and
each menu's status URL quoted a new batch id.
"""
from pyramid import traversal


def test_answering_orders_keeps_no_memory_per_order(app):
    app.get("/comer/warm", status=202)
    before = len(traversal._segment_cache)
    for i in range(100):
        job = app.post(f"/comer/plato{i}", status=202).json
        app.get(job["status_url"], status=200)
        batch = app.post_json("/menu", [{"comer": "pan"}, {"beber": "agua"}], status=202).json
        app.get(batch["status_url"], status=200)
    assert len(traversal._segment_cache) - before < 10, "Pyramid's URL cache grew with each order"
