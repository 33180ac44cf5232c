"""Blueprints: each module holds thin views over one core module."""

from __future__ import annotations


def register(app) -> None:
    """Register every blueprint on ``app``."""
    from gisapp.web.views import api, auth, data, export, fieldwork, health, pages, reports, tiles, upload

    app.register_blueprint(health.bp)
    app.register_blueprint(reports.bp)  # before pages: /permits/<code>.pdf is a report, not a page
    app.register_blueprint(pages.bp)
    app.register_blueprint(data.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(export.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(upload.bp)
    app.register_blueprint(tiles.bp)
    app.register_blueprint(fieldwork.bp)
