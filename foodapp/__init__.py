"""foodapp: orders over HTTP become Dramatiq jobs on Redis, run FIFO and never lost."""
from pyramid.config import Configurator


def main(global_config, **settings):
    """The WSGI application: the Pyramid app, with dramatiq-dashboard mounted in front."""
    with Configurator(settings=settings) as config:
        config.include(".settings")
        config.include(".broker")
        config.include(".routes")
        config.scan(".views")
        app = config.make_wsgi_app()
    from foodapp.dashboard import mount

    return mount(app, config.registry)
