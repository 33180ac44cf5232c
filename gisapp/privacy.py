"""Who may see personal data (owner names, ID numbers): the one place for the rule.

Exports, the API and every other feature list their fields through
:func:`visible_fields`, and ask :func:`show_personal` whether the current
request may see personal fields.  For now the setting ``SHOW_PERSONAL_DATA``
decides (default on, as on the office intranet); once sign-in is required
it becomes "signed-in staff only", here and nowhere else.
"""

from __future__ import annotations

from gisapp.schema import Layer, get_layer


def visible_fields(layer: str | Layer, show_personal: bool) -> list[str]:
    """The layer's field names in schema order, without personal ones unless ``show_personal``."""
    lay = get_layer(layer) if isinstance(layer, str) else layer
    return [f.name for f in lay.fields if show_personal or not f.personal]


def show_personal(config=None) -> bool:
    """Whether personal fields may be shown: ``config`` (or the current app's) ``SHOW_PERSONAL_DATA``."""
    if config is None:
        from flask import current_app

        config = current_app.config
    return bool(config.get("SHOW_PERSONAL_DATA", True))
