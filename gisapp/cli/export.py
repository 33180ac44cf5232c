"""``gisapp export``: the same exports as ``/export/…``, from the command line."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import click
from werkzeug.datastructures import MultiDict

from gisapp import history, privacy
from gisapp.cli.context import pass_ctx
from gisapp.cli.progress import progress_options, shown
from gisapp.filters import FilterError, parse_filter
from gisapp.formats import blds
from gisapp.formats import exports as exporting
from gisapp.schema import LAYERS


@click.command("export")
@click.argument("layer", type=click.Choice(list(LAYERS)), required=False)
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False),
              help="File to write; the format comes from its extension (.geojson, .csv, .gpkg).")
@click.option("--blds", "blds_dir", type=click.Path(file_okay=False),
              help="Write the BLDS open-data files (permits.csv, status_changes.csv) into this folder instead.")
@click.option("--ward", multiple=True, help="Ward code (GSO); repeatable or comma-separated.")
@click.option("--status", multiple=True, help="Status code, e.g. PROCESSING.")
@click.option("--procedure", multiple=True, help="Procedure code, e.g. NEW_BUILD.")
@click.option("--channel", multiple=True, help="Channel code: IN_PERSON, ONLINE, POST.")
@click.option("--purpose", multiple=True, help="Sidewalk-use purpose code.")
@click.option("--kind", multiple=True, help="Finding kind code.")
@click.option("--from", "date_from", help="From this date (YYYY-MM-DD).")
@click.option("--to", "date_to", help="Up to this date (YYYY-MM-DD).")
@click.option("--day", help="Only what is active that day (YYYY-MM-DD): permit periods, dossiers' works.")
@click.option("--as-of", "as_of", help="The data as of this day (YYYY-MM-DD): statuses from the history.")
@click.option("--q", help="Free-text search.")
@click.option("--bbox", help="minLon,minLat,maxLon,maxLat in WGS84.")
@click.option("--crs", help="GeoPackage CRS: 5899 (default) or 4326.")
@progress_options
@pass_ctx
def export(ctx, layer, output, blds_dir, ward, status, procedure, channel, purpose, kind, date_from, date_to, day,
           as_of, q, bbox, crs):
    """Export LAYER, filtered like the map, to a GeoJSON, CSV or GeoPackage file (or, with --blds, the BLDS files)."""
    if blds_dir:
        if layer or output:
            raise click.UsageError("--blds writes every BLDS file; give no LAYER or -o with it")
        _export_blds(ctx, Path(blds_dir))
        return
    if not layer or not output:
        raise click.UsageError("give LAYER and -o FILE (or --blds DIR)")
    args: MultiDict[str, str] = MultiDict()
    for name, values in (("ward", ward), ("status", status), ("procedure", procedure), ("channel", channel),
                         ("purpose", purpose), ("kind", kind)):
        for v in values:
            args.add(name, v)
    for name, value in (("from", date_from), ("to", date_to), ("day", day), ("as_of", as_of), ("q", q),
                        ("bbox", bbox)):
        if value:
            args.add(name, value)
    try:
        fmt = exporting.parse_format(output)
        if crs and fmt != "gpkg":
            raise FilterError("crs", "only GeoPackage exports take a CRS")
        crs = exporting.parse_crs(crs) if fmt == "gpkg" else None
        flt, _ = parse_filter(args, "export", personal=True)
    except FilterError as err:
        raise click.UsageError(str(err)) from None
    store = ctx.store()
    source = history.AsOfSource(store, flt.as_of) if flt.as_of else store
    total = store.count(layer, flt)
    with shown() as progress:
        size = exporting.export(exporting.CountingSource(source, progress, total), layer, flt, fmt, output, crs,
                                show_personal=privacy.show_personal(privacy.OPERATOR))
    click.echo(f"wrote {output} ({fmt}, {total} features, {size:,} bytes)")


def _export_blds(ctx, folder: Path) -> None:
    """Write every BLDS dataset of the store into ``folder`` (links use ``GISAPP_BASE_URL`` when set)."""
    store = ctx.store()
    folder.mkdir(parents=True, exist_ok=True)
    root = (ctx.config.get("BASE_URL") or "").rstrip("/")
    for name in blds.DATASETS:
        body = blds.dataset_csv(store, name, lambda key: f"{root}/permits/{quote(key, safe='')}" if root else "")
        path = folder / f"{name}.csv"
        path.write_bytes(body)
        rows = body.count(b"\n") - 1
        click.echo(f"wrote {path} ({rows} rows, {len(body):,} bytes)")
