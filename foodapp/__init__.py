"""foodapp: orders over HTTP become Dramatiq jobs on Redis, run FIFO and never lost."""


def main(global_config, **settings):
    """The WSGI application: the Pyramid app, with dramatiq-dashboard mounted in front."""
    # Imported here, not at the top: the workers import foodapp too, and need no Pyramid.
    from pyramid.config import Configurator

    with Configurator(settings=settings) as config:
        config.include(".settings")
        switch_interval(config.registry.foodapp.web_switch_interval_ms)
        config.include(".broker")
        config.include(".routes")
        config.include(".views.ops")
        config.include(".views.periodic")
        config.include(".views.queues")
        config.include(".views.search")
        config.include(".views.workers")
        # CSRF tokens for the operations page's forms, kept in a cookie (no session needed),
        # Secure when the request came over HTTPS.
        from foodapp.csrf import SecureOverTLSCSRFStoragePolicy

        config.set_csrf_storage_policy(SecureOverTLSCSRFStoragePolicy(httponly=True, samesite="Strict"))
        config.scan(".views")
        app = config.make_wsgi_app()
    from foodapp.dashboard import mount

    return mount(app, config.registry)


def switch_interval(milliseconds):
    """Let a web process's threads take Python's GIL from each other after ``milliseconds``
    (web.switch_interval_ms) instead of Python's 5 ms. waitress answers each request in one
    of its threads and reads and writes sockets in another: with the default, a thread whose
    socket is ready waits up to 5 ms for a busy one, and with 4 concurrent clients on 2 cores
    a web process served 300 orders a second instead of 1,800 at 0.5 ms (docs/bench.md).
    0 leaves Python's default. The workers keep it: there it made the drain slower."""
    import sys

    if milliseconds:
        sys.setswitchinterval(milliseconds / 1000)
