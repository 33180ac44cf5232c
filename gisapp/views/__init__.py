"""Blueprints: each module holds thin views over one core module."""

from __future__ import annotations


def register(app) -> None:
    """Register every blueprint on ``app``."""
    from gisapp.views import health

    app.register_blueprint(health.bp)
