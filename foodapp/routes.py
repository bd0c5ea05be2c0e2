"""The URLs foodapp answers. The seed's /comer/<food> and /beber/<drink> come first."""


def includeme(config):
    # `{item:[\s\S]*}` also matches an empty or slash-holding item, so that the view can say
    # what is wrong with it instead of answering a bare 404.
    config.add_route("order", r"/{queue:comer|beber}/{item:[\s\S]*}")
    config.add_route("order_without_item", "/{queue:comer|beber}")
    config.add_route("menu", "/menu")
    config.add_route("reports", "/reports")
    config.add_route("job", "/api/jobs/{job_id}")
    config.add_route("batch", "/api/batches/{batch_id}")
    config.add_route("healthz", "/healthz")
    config.add_route("readyz", "/readyz")
    config.add_route("metrics", "/metrics")
    config.add_route("openapi", "/openapi.json")
