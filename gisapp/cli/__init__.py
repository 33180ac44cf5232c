"""The ``gisapp`` command line: the group and its commands, one module per command family.

Command modules import :mod:`gisapp.cli.context`, never this module.
"""

from __future__ import annotations

import click

from gisapp.cli import analyze, check, db, export, importing, layers, seed, serve, tiles, users
from gisapp.cli.context import Context, StoreFailure
from gisapp.config import SETTINGS, ConfigError
from gisapp.store import StoreError


class StoreErrorsAsMessages(click.Group):
    """A group that reports store and settings errors as one line and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (StoreError, ConfigError) as err:
            raise StoreFailure(str(err)) from None


@click.group(cls=StoreErrorsAsMessages, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", metavar="PATH|URL",
              help=f"Store to use (default: ${SETTINGS['STORE'][0]} or layers/camle.gpkg).")
@click.pass_context
def cli(ctx: click.Context, store: str | None):
    """gisapp: construction-permit and sidewalk-permit GIS for a district."""
    ctx.obj = Context(store)


for command in (seed.seed, serve.serve, layers.layers, layers.schema_, db.db, users.users, export.export,
                importing.import_, analyze.analyze, tiles.tiles_group, check.check):
    cli.add_command(command)


def main(argv=None) -> None:
    """Entry point of the ``gisapp`` console script."""
    cli.main(args=argv, prog_name="gisapp")
