"""``gisapp db``: create and upgrade the PostGIS store's schema."""

from __future__ import annotations

import click

from gisapp.cli.progress import progress_options, shown
from gisapp.store import StoreError


def _postgis_store(ctx):
    """The configured store, which must be a PostGIS one."""
    from gisapp.store.postgis import PostGISStore

    store = ctx.store(must_exist=False)
    if not isinstance(store, PostGISStore):
        raise StoreError(f"'gisapp db' manages PostGIS stores; {store.url} is a GeoPackage "
                         "(set GISAPP_STORE or --store to a postgresql:// URL)")
    return store


@click.group()
def db():
    """Schema of a PostGIS store: versioned migrations."""


@db.command()
@click.option("--to", "target", type=int, default=None, help="Upgrade to this version (default: the latest).")
@progress_options
@click.pass_obj
def upgrade(ctx, target: int | None):
    """Create the schema or apply the migrations it lacks (safe to re-run)."""
    from gisapp.store.migrations import LATEST

    store = _postgis_store(ctx)
    before = store.schema_version()
    with shown() as progress:
        applied = store.upgrade(target, progress)
    for m in applied:
        click.echo(f"applied {m.version}: {m.description}")
    after = applied[-1].version if applied else before
    note = "" if after == LATEST else f" (latest is {LATEST})"
    click.echo(f"schema version {after}{note}" + ("" if applied else ", already up to date"))


@db.command()
@click.pass_obj
def version(ctx):
    """Print the applied schema version and the latest this gisapp knows."""
    from gisapp.store.migrations import LATEST

    store = _postgis_store(ctx)
    current = store.schema_version()
    state = ("up to date" if current == LATEST
             else "run 'gisapp db upgrade'" if current < LATEST else "newer than gisapp")
    click.echo(f"schema version {current}, latest {LATEST}: {state}")
