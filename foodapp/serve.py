"""`foodapp-serve production.ini --port 8081`: waitress with the ini's app and [server:main]
settings, on the port given. supervisord runs several per host this way (web:web_0 on 8080,
web:web_1 on 8081), so the front proxy can restart them one at a time.
"""
import argparse

import plaster
from waitress import serve


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ini")
    parser.add_argument("--port", type=int, required=True, help="the port to listen on (the host is the ini's)")
    args = parser.parse_args(argv)

    loader = plaster.get_loader(args.ini, protocols=["wsgi"])
    loader.setup_logging()
    app = loader.get_wsgi_app()
    server = dict(loader.get_settings("server:main"))
    server.pop("use", None)
    host = server.pop("listen", "0.0.0.0:8080").rsplit(":", 1)[0]
    serve(app, listen=f"{host}:{args.port}", **server)
