"""What every command shares: the settings with ``--store`` applied, and the store errors' one-line report.

Command modules import this module, never the group in :mod:`gisapp.cli`.
"""

from __future__ import annotations

import click

from gisapp.config import load_config
from gisapp.store import Store, open_store


class Context:
    """What every command shares: the settings (with ``--store`` applied)."""

    def __init__(self, store: str | None):
        self.config = load_config({"STORE": store} if store else None)

    def store(self, must_exist: bool = True) -> Store:
        """The configured store."""
        return open_store(self.config["STORE"], must_exist=must_exist)


pass_ctx = click.make_pass_decorator(Context)


class StoreFailure(click.ClickException):
    """A store error, shown as ``Error: …`` with exit status 2."""

    exit_code = 2
