"""foodapp: orders over HTTP become Dramatiq jobs on Redis, run FIFO and never lost."""


def main(global_config, **settings):
    """The WSGI application: the Pyramid app, with dramatiq-dashboard mounted in front."""
    # Imported here, not at the top: the workers import foodapp too, and need no Pyramid.
    from pyramid.config import Configurator

    with Configurator(settings=settings) as config:
        config.include(".settings")
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
