"""``gisapp export``: the same exports as ``/export/…``, from the command line."""

from __future__ import annotations

import click
from werkzeug.datastructures import MultiDict

from gisapp import privacy
from gisapp.cli.context import pass_ctx
from gisapp.filters import FilterError, parse_filter
from gisapp.formats import exports as exporting
from gisapp.schema import LAYERS


@click.command("export")
@click.argument("layer", type=click.Choice(list(LAYERS)))
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="File to write; the format comes from its extension (.geojson, .csv, .gpkg).")
@click.option("--ward", multiple=True, help="Ward code (GSO); repeatable or comma-separated.")
@click.option("--status", multiple=True, help="Status code, e.g. PROCESSING.")
@click.option("--procedure", multiple=True, help="Procedure code, e.g. NEW_BUILD.")
@click.option("--channel", multiple=True, help="Channel code: IN_PERSON, ONLINE, POST.")
@click.option("--purpose", multiple=True, help="Sidewalk-use purpose code.")
@click.option("--kind", multiple=True, help="Finding kind code.")
@click.option("--from", "date_from", help="From this date (YYYY-MM-DD).")
@click.option("--to", "date_to", help="Up to this date (YYYY-MM-DD).")
@click.option("--day", help="Only what is active that day (YYYY-MM-DD): permit periods, dossiers' works.")
@click.option("--q", help="Free-text search.")
@click.option("--bbox", help="minLon,minLat,maxLon,maxLat in WGS84.")
@click.option("--crs", help="GeoPackage CRS: 5899 (default) or 4326.")
@pass_ctx
def export(ctx, layer, output, ward, status, procedure, channel, purpose, kind, date_from, date_to, day, q, bbox,
           crs):
    """Export LAYER, filtered like the map, to a GeoJSON, CSV or GeoPackage file."""
    args: MultiDict[str, str] = MultiDict()
    for name, values in (("ward", ward), ("status", status), ("procedure", procedure), ("channel", channel),
                         ("purpose", purpose), ("kind", kind)):
        for v in values:
            args.add(name, v)
    for name, value in (("from", date_from), ("to", date_to), ("day", day), ("q", q), ("bbox", bbox)):
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
    size = exporting.export(store, layer, flt, fmt, output, crs,
                            show_personal=privacy.show_personal(privacy.OPERATOR))
    click.echo(f"wrote {output} ({fmt}, {store.count(layer, flt)} features, {size:,} bytes)")
