"""The ``gisapp`` command line: the group and its commands, one module per command family.

Command modules import :mod:`gisapp.cli.context`, never this module.  A command's module is imported
when the command runs (or help lists it): ``gisapp analyze`` need not import the web app, the tile
renderer or the PostgreSQL driver (about half a second of a run's start).
"""

from __future__ import annotations

import importlib

import click

from gisapp.cli.context import Context, StoreFailure
from gisapp.cli.progress import progress_options
from gisapp.config import SETTINGS, ConfigError
from gisapp.store import StoreError

#: Each command: its name, then its module in :mod:`gisapp.cli` and the command's name there.
COMMANDS = {"seed": ("seed", "seed"), "serve": ("serve", "serve"), "layers": ("layers", "layers"),
            "schema": ("layers", "schema_"), "db": ("db", "db"), "users": ("users", "users"),
            "export": ("export", "export"), "import": ("importing", "import_"), "analyze": ("analyze", "analyze"),
            "tiles": ("tiles", "tiles_group"), "check": ("check", "check"), "report": ("report", "report")}


class StoreErrorsAsMessages(click.Group):
    """A group that reports store and settings errors as one line and exit status 2, and imports each command's
    module when it is asked for (:data:`COMMANDS`)."""

    def list_commands(self, ctx):
        return sorted({*COMMANDS, *super().list_commands(ctx)})

    def get_command(self, ctx, cmd_name):
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, attribute = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f"gisapp.cli.{module}"), attribute)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (StoreError, ConfigError) as err:
            raise StoreFailure(str(err)) from None


@click.group(cls=StoreErrorsAsMessages, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", metavar="PATH|URL",
              help=f"Store to use (default: ${SETTINGS['STORE'][0]} or layers/camle.gpkg).")
@progress_options
@click.pass_context
def cli(ctx: click.Context, store: str | None):
    """gisapp: construction-permit and sidewalk-permit GIS for a district."""
    ctx.obj = Context(store)


def main(argv=None) -> None:
    """Entry point of the ``gisapp`` console script."""
    cli.main(args=argv, prog_name="gisapp")
