"""Benchmark: the conversions a load makes before the rows reach a store (issue 15 item 3, the load), each on its own.

On the dossiers and sidewalk permits of :func:`benchmarks.bench_postgis.make_data` (``--sizes``, default 1M),
with its CPU time (all threads) and the machine's load average beside each figure:

- ``coerce``: :func:`gisapp.schema.coerce` as every read and write types a frame (text → Python strings), and
  ``coerce_arrow``: with ``arrow_text=True`` (text kept in Arrow: what a write needs);
- ``search``: both search texts, :func:`gisapp.store.base.search_text` (Python strings) and
  ``search_arrow``: :func:`gisapp.formats.derive.search_texts` (Arrow);
- ``wkb``: ``shapely.to_wkb(geo.to_multipolygons(…))`` and ``wkb_new``: :func:`gisapp.formats.derive.multipolygon_wkb`;
- ``geojson``: :func:`gisapp.store.base.geojson_texts` of the MultiPolygons and ``geojson_new``:
  :func:`gisapp.formats.derive.geojson_of_wkb` of that WKB;
- ``derived``: :func:`gisapp.store.base.derived_columns` (search texts, GeoJSON, WKB: what both stores derive);
- ``gpkg_table`` / ``pg_table``: each store's whole conversion of a coerced frame as the store module has it
  (``gpkg._arrow_table``; ``postgis._arrow_table`` in ``COPY`` chunks of the spatial order, as ``_copy_into``).

``--gpkg-load DIR`` first times ``store.write`` of all the frames into a new GeoPackage there (removed after).
``--dump DIR`` writes the coerced frames' store tables (both stores) as Arrow files; ``--compare DIR`` checks
that this code's tables, :func:`~gisapp.store.base.derived_columns` and ``coerce(arrow_text=True)`` equal the
dumped ones (dump with the old code: ``cd /work/main && python /work/wt-X/benchmarks/bench_derive.py --dump D``).
Functions this code lacks are skipped, so the same file times an older checkout.

Usage::

    python -m benchmarks derive                           # 1M (hold the heavy lock: flock /work/data1m/heavy.lock)
    python -m benchmarks.bench_derive --sizes 100000 --threads 1
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if os.environ.get("BENCH_DERIVE_OLD") is None:  # else: the gisapp the venv has (an older checkout)
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import shapely  # noqa: E402

from benchmarks import save_results  # noqa: E402
from benchmarks.bench_postgis import make_data  # noqa: E402
from gisapp import geo, schema  # noqa: E402
from gisapp.store import base, gpkg, postgis  # noqa: E402

try:
    from gisapp.formats import derive
except ImportError:  # an older checkout
    derive = None  # type: ignore[assignment]

LAYERS = ("construction_permits", "sidewalk_permits")


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def timed(label: str, out: dict, func, *args, **kw):
    start, cpu = time.perf_counter(), time.process_time()
    value = func(*args, **kw)
    out[label] = round(time.perf_counter() - start, 3)
    out[label + "_cpu"] = round(time.process_time() - cpu, 3)
    out[label + "_load"] = float(load())
    print(f"  {label:<14} {out[label]:8.3f} s  cpu {out[label + '_cpu']:7.3f} s  load {load()}", flush=True)
    return value


def pg_table(layer, frame) -> pa.Table:
    """``postgis._arrow_table`` over the whole frame in ``COPY`` chunks of the spatial order, as ``_copy_into``."""
    order = postgis._spatial_order(frame.geometry.values)
    chunk = postgis.COPY_CHUNK
    return pa.concat_tables([postgis._arrow_table(layer, frame.iloc[order[s:s + chunk]])
                             for s in range(0, len(frame), chunk)])


def shapely_wkb(geoms) -> pa.Array:
    """Shapely's WKB of each geometry, as the stores wrote it before :mod:`gisapp.formats.derive`."""
    return pa.array(shapely.to_wkb(geoms, byte_order=1), pa.binary(), from_pandas=True)


def has_arrow_coerce() -> bool:
    return "arrow_text" in schema.coerce.__code__.co_varnames


def run(n: int, dump: Path | None, compare: Path | None, gpkg_load: Path | None = None) -> dict:
    frames, how = make_data(n)
    print(f"{n:,} per layer ({how}); threads {derive.THREADS if derive else 1}; load {load()}", flush=True)
    results: dict = {"n": n, "generator": how, "threads": derive.THREADS if derive else 1}
    if gpkg_load is not None:  # the whole load, as bench_postgis times load_s: every layer in one replace
        from gisapp.store.gpkg import GeoPackageStore

        gpkg_load.mkdir(parents=True, exist_ok=True)
        path = gpkg_load / f"load{n}.gpkg"
        path.unlink(missing_ok=True)
        try:
            timed("gpkg_load", results, GeoPackageStore(path, must_exist=False).write, frames)
        finally:
            path.unlink(missing_ok=True)
    for name in LAYERS:
        print(name, flush=True)
        results[name] = run_layer(schema.get_layer(name), frames[name], dump, compare)
    return results


def run_layer(layer, frame, dump: Path | None, compare: Path | None) -> dict:
    """The timings of one layer (and whether its outputs equal those dumped in ``compare``)."""
    out: dict = {}
    coerced = timed("coerce", out, schema.coerce, layer, frame)
    typed = timed("coerce_arrow", out, schema.coerce, layer, frame, arrow_text=True) if has_arrow_coerce() \
        else coerced
    timed("search", out, lambda: (base.search_text(layer, coerced), base.search_text(layer, coerced, True)))
    if derive is not None:
        timed("search_arrow", out, lambda: (derive.search_texts(layer, typed), derive.search_texts(layer, typed, True)))
    multi = timed("multipolygons", out, geo.to_multipolygons, coerced.geometry.values)
    timed("wkb", out, shapely_wkb, multi)
    timed("geojson", out, base.geojson_texts, multi)
    del multi
    derived = None
    if derive is not None:
        wkb = timed("wkb_new", out, derive.multipolygon_wkb, typed.geometry.values)
        timed("geojson_new", out, derive.geojson_of_wkb, wkb)
        del wkb
        derived = timed("derived", out, base.derived_columns, layer, typed)
    tables = {"gpkg": timed("gpkg_table", out, gpkg._arrow_table, layer, typed),
              "pg": timed("pg_table", out, pg_table, layer, typed)}
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
        for kind, table in tables.items():
            with pa.OSFile(str(dump / f"{layer.name}.{kind}.arrow"), "wb") as sink, \
                    pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
    if compare is not None:
        out["equal"] = check(layer, coerced, typed, tables, derived, compare)
    return out


def check(layer, coerced, typed, tables: dict, derived: dict | None, compare: Path) -> bool:
    """Whether this code's outputs equal those dumped in ``compare`` (and the two coerces agree); says which differ."""
    ok = True
    for kind, table in tables.items():
        with pa.memory_map(str(compare / f"{layer.name}.{kind}.arrow")) as source:
            old = pa.ipc.open_file(source).read_all()
        for col in old.column_names:
            same = table.column(col).combine_chunks().equals(old.column(col).combine_chunks())
            if not same:
                print(f"  DIFFERENT: {kind} {col}")
            ok &= same
        ok &= table.column_names == old.column_names
        if kind == "gpkg" and derived is not None:
            for col, new in ((base.SEARCH_COLUMN, derived[base.SEARCH_COLUMN]),
                             (base.PERSONAL_SEARCH_COLUMN, derived[base.PERSONAL_SEARCH_COLUMN]),
                             (base.GEOJSON_COLUMN, derived[base.GEOJSON_COLUMN]), ("geom", derived["wkb"])):
                same = new.equals(old.column(col).combine_chunks().cast(new.type))
                if not same:
                    print(f"  DIFFERENT: derived_columns {col}")
                ok &= same
        del old
    for f in layer.fields:
        a, b = coerced[f.name], typed[f.name]
        if f.type == "text":
            x, y = a.to_numpy(dtype=object), b.to_numpy(dtype=object)
            gone = pd.isna(x)
            same = bool((gone == pd.isna(y)).all() and (x[~gone] == y[~gone]).all())
        else:
            same = a.equals(b)
        if not same:
            print(f"  DIFFERENT: coerce arrow_text {f.name}")
        ok &= same
    print(f"  equal to {compare}: {ok}", flush=True)
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000", help="features per layer, comma-separated")
    parser.add_argument("--threads", type=int, default=None, help="threads of gisapp.formats.derive (default: cores)")
    parser.add_argument("--dump", type=Path, help="write the store tables as Arrow files here")
    parser.add_argument("--compare", type=Path, help="check the store tables against those dumped here")
    parser.add_argument("--gpkg-load", type=Path, help="first time a whole load into a new GeoPackage in this folder")
    args = parser.parse_args(argv)
    if args.threads is not None and derive is not None:
        derive.THREADS = args.threads
    results = {"runs": [run(int(n), args.dump, args.compare, args.gpkg_load) for n in args.sizes.split(",")]}
    if os.environ.get("BENCH_DERIVE_OLD") is None:  # an older checkout's own folder is not written
        save_results("derive", results)
    return 0 if all(r[name].get("equal", True) for r in results["runs"] for name in LAYERS) else 1


if __name__ == "__main__":
    sys.exit(main())
