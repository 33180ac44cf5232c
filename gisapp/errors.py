"""The one error a request can end in, from the core to every surface (map data, API, exports, tiles, pages).

:class:`RequestError` carries an HTTP status, an OGC-style code and a
description for the client; the core, the API and the views raise it (or a
subclass) and ``gisapp/web/errors.py`` renders it: as the JSON body
:meth:`RequestError.body` (``{"code", "description", "status"}``) or as the
HTML error page.  No Flask here.
"""

from __future__ import annotations


class RequestError(Exception):
    """A request the app refuses: HTTP ``status``, an OGC-style ``code``, a ``description`` for the client."""

    def __init__(self, status: int, code: str, description: str):
        super().__init__(description)
        self.status, self.code, self.description = status, code, description

    def body(self) -> dict:
        """The one JSON error shape: ``code``, ``description``, ``status``."""
        return {"code": self.code, "description": self.description, "status": self.status}


class NotFound(RequestError):
    """404: no such collection, layer, format, feature or dossier."""

    def __init__(self, description: str):
        super().__init__(404, "NotFound", description)


class FilterError(RequestError, ValueError):
    """400 ``InvalidParameterValue``: a parameter that cannot be used; ``param`` names it.

    The description is ``"<param>: <message>"`` on every surface.
    """

    def __init__(self, param: str, message: str):
        super().__init__(400, "InvalidParameterValue", f"{param}: {message}")
        self.param = param
        self.message = message


class InputError(FilterError):
    """400 ``InvalidParameterValue``: a process input (``field``) that cannot be used, and why.

    The same shape and words as a bad filter parameter: ``"<field>: <message>"``.
    """

    def __init__(self, field: str, message: str):
        super().__init__(field, message)
        self.field = field
