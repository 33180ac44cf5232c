"""Who may see personal data (owner names, ID numbers): the one place for the rule.

Exports, the API and every other feature list their fields through
:func:`visible_fields`, and ask :func:`show_personal` whether the user at
hand may see personal fields: signed-in staff only, decided here and
nowhere else.
"""

from __future__ import annotations

from gisapp.schema import Layer, get_layer


def visible_fields(layer: str | Layer, show_personal: bool) -> list[str]:
    """The layer's field names in schema order, without personal ones unless ``show_personal``."""
    lay = get_layer(layer) if isinstance(layer, str) else layer
    return [f.name for f in lay.fields if show_personal or not f.personal]


#: The user of a shell command: the operator works on the store itself and sees everything.
OPERATOR = "operator"


def show_personal(user: object | None, *, forced: bool | None = None) -> bool:
    """Whether ``user`` may see personal fields: signed-in staff and the :data:`OPERATOR`, never anonymous users.

    ``forced`` (an app built with an explicit ``SHOW_PERSONAL_DATA``; tests
    only, not an environment setting) overrides the rule.
    """
    if forced is not None:
        return bool(forced)
    return user is not None
