"""``gisapp import``: an office's files into the store, with a summary and a rejects file."""

from __future__ import annotations

import getpass
import time
from pathlib import Path

import click

from gisapp.accounts import Accounts
from gisapp.cli.context import Context, pass_ctx
from gisapp.importing import statuses
from gisapp.importing.prepare import IMPORTABLE_LAYERS, ImportFailure, rejects_path, run_import, write_rejects
from gisapp.store import StoreError

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command(name="import")
@click.argument("layer", type=click.Choice([*IMPORTABLE_LAYERS, statuses.NAME]))
@click.argument("file", type=_FILE)
@click.option("--parcels", type=_FILE, help="Parcel polygons to join a table of dossiers to "
              "(by ward + map sheet + parcel number).")
@click.option("--crs", metavar="EPSG:N", help="CRS of a file that has none (e.g. a Shapefile without .prj).")
@click.option("--mapping", type=_FILE, help="JSON or TOML file of source column = field name.")
@click.option("--mode", type=click.Choice(["upsert", "replace"]), default="upsert", show_default=True,
              help="upsert: replace features with the same key and add new ones; replace: swap the whole layer.")
@click.option("--dry-run", is_flag=True, help="Check and report without writing to the store.")
@click.option("--sheet", metavar="NAME", help="XLSX sheet (name or 1-based number), or layer of a multi-layer file.")
@click.option("--allow-any-driver", is_flag=True,
              help="Let GDAL read FILE in any format it knows (KML, FlatGeobuf, a VRT…), zips through /vsizip/, "
                   "without checking that the content is the format its name says. Only for your own files.")
@pass_ctx
def import_(ctx: Context, layer, file, parcels, crs, mapping, mode, dry_run, sheet, allow_any_driver):
    """Import FILE (Shapefile, GeoPackage, GeoJSON, CSV or XLSX) into LAYER.

    LAYER status_changes: a one-stop system's status history export (CSV or
    XLSX, one row per change: dossier code or permit number, status, date
    and optional time, note), added to the status history.

    Every row is accepted or rejected with a reason; rejected rows are
    written to FILE's name with .rejects.csv, beside it.  Exits with
    status 1 when nothing was accepted.  A file is read only when its
    content is the format its name says (a .geojson that is really an XML
    VRT is refused), and a zip must hold one dataset.
    """
    started = time.perf_counter()
    store = ctx.store(must_exist=False)
    try:
        if layer == statuses.NAME:
            if parcels or crs or mapping or mode != "upsert" or allow_any_driver:
                raise click.UsageError("a status history import takes only FILE, --dry-run and --sheet")
            report = statuses.run_history_import(store, file, dry_run=dry_run, sheet=sheet)
        else:
            report = run_import(store, layer, file, calendar=ctx.config["CALENDAR"], parcels=parcels, crs=crs,
                                mapping=mapping, mode=mode, dry_run=dry_run, sheet=sheet,
                                allow_any_driver=allow_any_driver)
    except click.UsageError:
        raise
    except ImportFailure as err:
        raise click.ClickException(str(err)) from None
    except StoreError:
        raise  # the group prints it as one line
    except Exception as err:  # one line for the user, never a traceback
        raise click.ClickException(f"import failed: {type(err).__name__}: {_first_line(err)}") from None
    for line in report.summary_lines():
        click.echo(line)
    target = rejects_path(file)
    if report.rejected:
        try:
            written = write_rejects(report, target)
        except OSError:
            written = write_rejects(report, Path.cwd() / target.name)
        click.echo(f"rejected rows written to {written}")
    elif target.exists():
        target.unlink()
        click.echo(f"no rejected rows; removed the old {target}")
    if report.written:
        click.echo(f"store: {store.url}")
        Accounts(ctx.config["ACCOUNTS"]).audit(
            f"cli:{getpass.getuser()}", "import", layer, report.accepted,
            f"{mode} from {file.name}: " + ", ".join(f"{k} {v}" for k, v in report.changes.items()))
    click.echo(f"done in {time.perf_counter() - started:.1f} s")
    if report.accepted == 0:
        raise click.ClickException("nothing was imported: " + ("the file has no rows" if not report.read
                                                               else "every row was rejected"))


def _first_line(err: Exception) -> str:
    """The first line of an exception's message."""
    text = str(err).strip()
    return text.splitlines()[0] if text else ""
