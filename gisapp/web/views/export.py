"""``/export/<layer>.<geojson|csv|gpkg>``: the map's filtered view as a download, streamed."""

from __future__ import annotations

import datetime as dt
from urllib.parse import quote

from flask import Blueprint, Response, request, stream_with_context

from gisapp import history
from gisapp.errors import FilterError, NotFound
from gisapp.filters import parse_filter, refuse_unknown
from gisapp.formats import blds
from gisapp.formats import exports as exporting
from gisapp.schema import LAYERS
from gisapp.web import auth
from gisapp.web.request import get_store, known_wards, public_root

bp = Blueprint("export", __name__, url_prefix="/export")


def blds_dataset(name: str):
    """A BLDS open-data file (:mod:`gisapp.formats.blds`): ``permits`` or ``status_changes``; no parameters."""
    refuse_unknown(request.args, ())
    root = public_root()
    body = blds.dataset_csv(get_store(), name, lambda key: f"{root}/permits/{quote(key, safe='')}")
    return Response(body, content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="blds_{name}.csv"',
                             "Cache-Control": "no-store"})


for _name in blds.DATASETS:  # one route per dataset: /export/blds/permits.csv, /export/blds/status_changes.csv
    bp.add_url_rule(f"/blds/{_name}.csv", f"blds_{_name}", blds_dataset, methods=["GET"],
                    defaults={"name": _name})


@bp.get("/<layer>.<fmt>")
def download(layer: str, fmt: str):
    """Every feature of ``layer`` matching the filter, as an attachment with a descriptive name.

    Reads the map's filter (surface ``export`` of :mod:`gisapp.filters`: ``ward status
    procedure channel purpose kind from to as_of q bbox``, strictly: a bad value is a 400) and
    ``crs`` for GeoPackage; any other parameter is a 400 (as on ``/api``), so a mistyped
    filter never exports everything.  The map hands over its filter parameters only.
    """
    if layer not in LAYERS:
        raise NotFound(f"no layer {layer!r}; layers: {', '.join(LAYERS)}")
    if fmt not in exporting.FORMATS:
        raise NotFound(f"no export format {fmt!r}; formats: {', '.join(exporting.FORMATS)}")
    flt, _ = parse_filter(request.args, "export", known_wards=known_wards(), personal=auth.show_personal())
    store = get_store()
    crs = exporting.parse_crs(request.args.get("crs")) if fmt == "gpkg" else None
    if request.args.get("crs") and fmt != "gpkg":
        raise FilterError("crs", "only GeoPackage exports take a CRS; GeoJSON and CSV are WGS84")
    source = history.AsOfSource(store, flt.as_of) if flt.as_of else store
    chunks = exporting.chunks(source, layer, flt, fmt, crs=crs, show_personal=auth.show_personal())
    name = exporting.filename(layer, flt, fmt, dt.date.today())
    return Response(stream_with_context(chunks), content_type=exporting.MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})
