"""Who may see personal data (owner names, ID numbers): the one place for the rule.

Exports, the API and every other feature list their fields through
:func:`visible_fields`, and ask :func:`show_personal` whether the current
request may see personal fields: signed-in staff only, decided here and
nowhere else.
"""

from __future__ import annotations

from gisapp.schema import Layer, get_layer


def visible_fields(layer: str | Layer, show_personal: bool) -> list[str]:
    """The layer's field names in schema order, without personal ones unless ``show_personal``."""
    lay = get_layer(layer) if isinstance(layer, str) else layer
    return [f.name for f in lay.fields if show_personal or not f.personal]


def show_personal(config=None) -> bool:
    """Whether personal fields may be shown.

    On the web: to signed-in staff only.  On the command line (``config``
    given): yes, the operator works on the store itself.  An app built with
    an explicit ``SHOW_PERSONAL_DATA`` (tests only; not an environment
    setting) uses that value instead.
    """
    if config is not None:
        return True
    from flask import current_app

    forced = current_app.config.get("SHOW_PERSONAL_DATA")
    if forced is not None:
        return bool(forced)
    from gisapp.auth import current_user

    return current_user() is not None
