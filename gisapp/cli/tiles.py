"""``gisapp tiles``: render the store's vector tiles into the shared tile folder (``GISAPP_TILE_DIR``).

``gisapp serve`` runs ``gisapp tiles watch`` beside the web server, at low
priority; ``gisapp tiles render`` does one version now (after an import
from a script, say, so that the first map views are already fast).
"""

from __future__ import annotations

import click

from gisapp.cli.context import Context
from gisapp.cli.progress import echo_for, progress_options, shown
from gisapp.config import parse_zooms
from gisapp.tiles.disk import TileDir, watch
from gisapp.tiles.watch import follow


def _zooms(ctx: Context, text: str | None) -> tuple[int, ...]:
    if text is None:
        return ctx.config["TILE_WARM"]
    try:
        return parse_zooms(text)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--zooms") from None


def _tile_dir(ctx: Context) -> TileDir:
    if not ctx.config["TILE_DIR"]:
        raise click.UsageError("GISAPP_TILE_DIR is none: there is no tile folder to render into")
    try:
        return TileDir(ctx.config["TILE_DIR"], ctx.store().url)
    except OSError as err:
        raise click.UsageError(f"GISAPP_TILE_DIR cannot hold tiles: {err}") from None


@click.group("tiles")
def tiles_group():
    """Pre-rendered vector tiles (GISAPP_TILE_DIR, GISAPP_TILE_WARM)."""


@tiles_group.command("render")
@click.option("--zooms", default=None, help="Zoom levels, e.g. 14-17 or 14,15 (default: GISAPP_TILE_WARM).")
@progress_options
@click.pass_obj
def render_command(ctx: Context, zooms: str | None):
    """Render the unfiltered tiles of the store's current data now (waits for a render already running)."""
    tile_dir, levels = _tile_dir(ctx), _zooms(ctx, zooms)
    click.echo(f"rendering z{'/'.join(map(str, levels)) or ' (none)'} into {tile_dir.root}")
    with shown() as progress:
        watch(ctx.store, tile_dir, levels, once=True, log=echo_for(progress), progress=progress)


@tiles_group.command("watch")
@click.option("--zooms", default=None, help="Zoom levels, e.g. 14-17 (default: GISAPP_TILE_WARM).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between two looks at the store's version.")
@click.option("--parent", type=int, default=None, hidden=True,
              help="Process id of the server that started it: run at low priority and end with it.")
@click.pass_obj
def watch_command(ctx: Context, zooms: str | None, interval: float, parent: int | None):
    """Render the tiles of each new version of the store's data, until stopped (what `serve` runs)."""
    if parent is not None:
        follow(parent)
    tile_dir, levels = _tile_dir(ctx), _zooms(ctx, zooms)
    watch(ctx.store, tile_dir, levels, interval=interval, log=lambda m: click.echo(f"tiles: {m}"))
