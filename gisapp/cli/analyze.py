"""``gisapp analyze``: run the overlap analysis on the store and keep its findings layer."""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import gc
import json
import time
from collections.abc import Iterator

import click
import numpy as np
import pandas as pd

from gisapp import domain
from gisapp.analysis.overlaps import KINDS, AnalysisParams
from gisapp.analysis.run import analyze_store
from gisapp.cli.context import Context
from gisapp.cli.progress import progress_options, shown

#: Short column headers of the printed summary (the kind codes stay whole).
_HEADERS = {"ward_code": "ward", "dossiers": "dossiers", "dossiers_needing_sidewalk": "needing",
            "share_needing_sidewalk": "share", "skipped": "skipped", "findings": "findings"}


@click.command("analyze")
@click.option("--distance", "distance_m", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Metres between a sidewalk permit and a construction parcel for a merge candidate.")
@click.option("--gap-days", type=click.IntRange(min=0), default=90, show_default=True,
              help="Most days between two sidewalk permits at the same place for a coordination opportunity.")
@click.option("--min-clearance", "min_clearance_m", type=click.FloatRange(min=0), default=1.5, show_default=True,
              help="Least sidewalk width (m) that must stay free for pedestrians.")
@click.option("--works-months", type=click.IntRange(min=0), default=12, show_default=True,
              help="Length of the works period from the permit's issue (or receipt) date, in months.")
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="The data's as-of date, YYYY-MM-DD (default: the store's as-of date, if set).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the summary as one JSON document (per-ward rows, skipped count, run facts).")
@progress_options
@click.pass_obj
def analyze(ctx: Context, distance_m: float, gap_days: int, min_clearance_m: float, works_months: int, as_of,
            as_json: bool = False):
    """Find overlaps of sidewalk-use permits with construction sites and each other; store them as 'findings'."""
    store = ctx.store()
    if as_of is None:
        stored = store.meta().get("as_of")
        as_of = dt.date.fromisoformat(stored) if stored else None
    else:
        as_of = as_of.date()
    params = AnalysisParams(distance_m=distance_m, gap_days=gap_days, min_clearance_m=min_clearance_m,
                            works_months=works_months, as_of=as_of)
    started = time.perf_counter()
    # under the writers' lock: a permit saved while the layers are read would otherwise lose its findings
    # to this run's older ones (writers wait; readers do not)
    with shown() as progress, store.write_lock(), cycles_collected_after():
        result, read_s = analyze_store(store, params, progress, then_replace=True)
        run_s = time.perf_counter() - started - read_s
        counts = result.rows["kind"].value_counts()
        meta = {**params.as_meta(),
                "run_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                "run_seconds": round(run_s, 3), "read_seconds": round(read_s, 3),
                "skipped": len(result.skipped),
                "counts": {kind: int(counts.get(kind, 0)) for kind in domain.FINDING_KINDS}}
        written = time.perf_counter()
        # the rows as the analysis made them (Arrow texts, MultiPolygon WKB): no Python object per finding
        store.write({"findings": result.rows}, mode="replace", meta={"findings": meta}, progress=progress)
        write_s = time.perf_counter() - written
    no_cycle_search_at_exit()
    summary, skipped, stored = result.summary, result.skipped, len(result.rows)
    del result  # (Arrow columns: nothing to free a geometry at a time)
    if as_json:
        rows = json.loads(summary.to_json(orient="records"))
        click.echo(json.dumps({"store": store.url, "findings": stored, "summary": rows,
                               "run": meta, "write_seconds": round(write_s, 3)}, ensure_ascii=False))
        return
    click.echo(format_summary(summary))
    click.echo("")
    click.echo(format_skipped(skipped))
    click.echo(f"stored {stored} findings in {store.url} "
               f"(analysis {run_s:.2f} s, reading {read_s:.2f} s, storing {write_s:.2f} s)")


@contextlib.contextmanager
def cycles_collected_after() -> Iterator[None]:
    """No collection of reference cycles inside (Python's cyclic garbage collector paused), as it was after.

    The analysis makes millions of objects (geometries, texts) that stay alive to its end and form no cycles;
    each full pass of the collector over them costs ~0.07 s and a run at a million features made about eight,
    finding nothing to free.  What cycles there are wait for the collector's next pass after the command.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def no_cycle_search_at_exit() -> None:
    """At this process's exit, no last search for reference cycles among the objects alive then: :func:`gc.freeze`
    as the first exit handler (registered once however often this is called).

    Python's finalisation walks every object the collector tracks once more; after an analysis at a million
    features those are the layers' texts and the geometries the analysis made (the findings' ~700,000 geometries
    too, before the findings came out as WKB), with no cycle among them: 0.2-0.4 s after the command's last line.
    The rest of the exit is unchanged: the other exit handlers run, the streams are flushed, and objects go by
    their reference counts as the modules are torn down.
    """
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def format_summary(summary: pd.DataFrame) -> str:
    """The per-ward summary as a plain-text table (one line per ward, the total last)."""
    columns = ["ward_code", *KINDS, "findings", "dossiers", "dossiers_needing_sidewalk",
               "share_needing_sidewalk", "skipped"]
    cells = [[_HEADERS.get(c, c) for c in columns]]
    for row in summary[columns].itertuples(index=False):
        values = []
        for name, value in zip(columns, row):
            if name == "ward_code":
                values.append("—" if value is None or pd.isna(value) else str(value))
            elif name == "share_needing_sidewalk":
                values.append("—" if pd.isna(value) else f"{value:.1%}")
            else:
                values.append(str(int(value)))
        cells.append(values)
    widths = [max(len(r[k]) for r in cells) for k in range(len(columns))]
    lines = ["  ".join(v.ljust(w) if k == 0 else v.rjust(w) for k, (v, w) in enumerate(zip(r, widths)))
             for r in cells]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    return "\n".join(lines)


def format_skipped(skipped: pd.DataFrame, limit: int = 10) -> str:
    """How many features were skipped, by reason, and the first ``limit`` of them."""
    if skipped.empty:
        return "skipped: 0 features"
    kinds = skipped["reason"].astype(str).str.split(";").str[0].str.split(":").str[0]
    by_kind = kinds.value_counts()
    lines = [f"skipped: {len(skipped)} features ("
             + ", ".join(f"{reason} ×{n}" for reason, n in by_kind.items()) + ")"]
    for row in skipped.head(limit).itertuples(index=False):
        lines.append(f"  {row.layer} {row.id}: {row.reason}")
    if len(skipped) > limit:
        lines.append(f"  … and {len(skipped) - limit} more")
    return "\n".join(lines)


def parse_summary(text: str) -> pd.DataFrame:
    """The table printed by :func:`format_summary` read back (for tests and scripts)."""
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("-")]
    header = rows[0]
    frame = pd.DataFrame(rows[1:], columns=header)
    for name in header[1:]:
        if name != "share":
            frame[name] = frame[name].astype(np.int64)
    return frame
