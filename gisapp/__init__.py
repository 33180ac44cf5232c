"""gisapp: a GIS construction-permit viewer for a district urban-management office."""

from __future__ import annotations

import secrets

from gisapp.config import ROOT, load_config

__all__ = ["create_app"]


def create_app(config: dict | None = None):
    """Build the Flask app: settings, store access, views, error handlers.

    Nothing is read from the store here; each request opens what it needs.
    """
    from flask import Flask

    from gisapp import auth, errors, views, web

    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder="static",
        static_url_path="/static",
    )
    settings = load_config(config)
    app.config.update(settings)
    if not app.config["SECRET_KEY"]:
        # Development without GISAPP_SECRET_KEY: a key of this process only
        # (sessions end when it restarts); production refuses to start instead.
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    if app.config["PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # The client's address and scheme as the trusted proxies saw them (sign-in throttling, Secure cookies);
        # only the last PROXIES entries of each header are believed, the rest may be the client's own words.
        n = app.config["PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)
    web.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    views.register(app)
    return app
