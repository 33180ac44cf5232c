"""``gisapp layers`` and ``gisapp schema``: what the store holds and how its layers are defined."""

from __future__ import annotations

import click

from gisapp.cli.context import Context, pass_ctx
from gisapp.schema import describe_markdown


@click.command()
@pass_ctx
def layers(ctx: Context):
    """List the store's layers: count, CRS, extent, and the data's as-of date."""
    store = ctx.store()
    click.echo(f"store: {store.url}")
    click.echo(f"as of: {store.meta().get('as_of', '(not set)')}")
    click.echo(f"{'layer':<22} {'count':>8}  {'crs':<10} extent (minx, miny, maxx, maxy)")
    for info in store.info():
        extent = "—" if info.extent is None else ", ".join(f"{v:.1f}" for v in info.extent)
        click.echo(f"{info.name:<22} {info.count:>8}  {info.crs:<10} {extent}")


@click.command("schema")
def schema_():
    """Print the layer definitions (fields, types, labels, codes) as Markdown."""
    click.echo(describe_markdown())
