"""``/healthz``: the app answers and its store can be read."""

from __future__ import annotations

from flask import Blueprint, jsonify

from gisapp.web import get_store

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """200 with layer counts when the store answers; 503 (JSON error) otherwise."""
    counts = {info.name: info.count for info in get_store().info()}
    return jsonify({"status": "ok", "layers": counts})
