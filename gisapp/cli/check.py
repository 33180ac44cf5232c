"""``gisapp check``: the occupancy check of ``POST /api/processes/occupancy-check/execution``, from a file."""

from __future__ import annotations

import json

import click
import orjson

from gisapp import privacy
from gisapp.analysis.check import CheckLimits, CheckRules, check_occupancy, parse_proposal
from gisapp.cli.context import pass_ctx
from gisapp.errors import InputError
from gisapp.fees import FeeTableError


def read_proposal(path: str) -> tuple[dict, dict]:
    """The one polygon of a GeoJSON file (a geometry, a Feature or a FeatureCollection of one feature),
    and the feature's properties (``start``, ``end``, ``purpose``, ``construction_dossier_code`` when given)."""
    try:
        with open(path, "rb") as fh:
            doc = orjson.loads(fh.read())
    except (OSError, orjson.JSONDecodeError) as err:
        raise click.BadParameter(f"cannot read GeoJSON from {path}: {err}", param_hint="GEOMETRY_FILE") from None
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        features = doc.get("features") or []
        if len(features) != 1:
            raise click.BadParameter(f"{path} holds {len(features)} features; give one", param_hint="GEOMETRY_FILE")
        doc = features[0]
    properties: dict = {}
    if isinstance(doc, dict) and doc.get("type") == "Feature":
        properties = doc.get("properties") or {}
        doc = doc.get("geometry")
    return doc, properties if isinstance(properties, dict) else {}


@click.command("check")
@click.argument("geometry_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--start", help="First day of the occupancy, YYYY-MM-DD (default: the feature's 'start').")
@click.option("--end", help="Last day of the occupancy, YYYY-MM-DD (default: the feature's 'end').")
@click.option("--purpose", help="Sidewalk-use purpose code, e.g. MATERIALS (default: the feature's 'purpose').")
@click.option("--dossier", "dossier", default=None, help="Construction dossier code it belongs to (optional).")
@click.option("--received-on", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="Day the application is received, for the due date (default: today).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (the process's answer).")
@click.option("--lang", type=click.Choice(["vi", "en"]), default=None, help="Language of the text report.")
@pass_ctx
def check(ctx, geometry_file, start, end, purpose, dossier, received_on, as_json, lang):
    """Check a proposed sidewalk occupancy (a polygon in a WGS84 GeoJSON file) before it is granted.

    --start, --end and --purpose may come from the properties of the file's
    feature (``start``, ``end``, ``purpose``, ``construction_dossier_code``).

    Prints the verdict (OK, REFER, REFUSE), the reasons, the narrowest free
    passage, the clashes, free windows, the construction dossier, fee and
    due date.  Reads the store, writes nothing.
    """
    geometry, properties = read_proposal(geometry_file)
    inputs = {"geometry": geometry}
    for name, value in (("start", start), ("end", end), ("purpose", purpose), ("construction_dossier_code", dossier)):
        value = value or properties.get(name)
        if value is None and name != "construction_dossier_code":
            raise click.UsageError(f"--{name} is required (the file's feature has no '{name}' property)")
        if value is not None:
            inputs[name] = value
    try:
        rules = CheckRules.from_config(ctx.config, received_on=received_on.date() if received_on else None)
    except FeeTableError as err:
        raise click.ClickException(str(err)) from None
    try:
        proposal = parse_proposal(inputs, limits=CheckLimits.from_config(ctx.config))
        report = check_occupancy(ctx.store(), proposal, rules=rules,
                                 personal=privacy.show_personal(privacy.OPERATOR))
    except InputError as err:
        raise click.UsageError(err.description) from None
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        click.echo(format_report(report, lang or ctx.config["LANG"]))


def format_report(report: dict, lang: str = "vi") -> str:
    """The report as text lines in ``lang``."""
    en = lang == "en"
    no = "—"
    lines = [f"{'verdict' if en else 'kết luận'}: {report['verdict']}"]
    for r in report["reasons"]:
        lines.append(f"  - {r['code']}: {r['en' if en else 'vi']}")
    passage = report["narrowest_passage_m"]
    lines += [
        f"{'ward' if en else 'phường'}: {report['ward_code'] or no}",
        f"{'sidewalks' if en else 'vỉa hè'}: {', '.join(report['sidewalk_ids']) or no}",
        f"{'area' if en else 'diện tích'}: {report['area_m2']:.2f} m²; {report['start']} – {report['end']} "
        f"({report['days']} {'days' if en else 'ngày'})",
        f"{'narrowest free passage' if en else 'lối đi bộ hẹp nhất'}: "
        + (f"{passage:.2f} m ({report['narrowest_on']})" if passage is not None else no)
        + f", {'minimum' if en else 'tối thiểu'} {report['min_passage_m']:.2f} m",
    ]
    for c in report["clashes"]:
        lines.append(f"{'clash' if en else 'chồng lấn'}: {c['permit_no']} {c['overlap_area_m2']:.2f} m², "
                     f"{c['overlap_days']} {'days' if en else 'ngày'} ({c['overlap_start']} – {c['overlap_end']})")
    for w in report["opportunities"]:
        lines.append(f"{'free window' if en else 'thời gian trống'}: {w['start']} – {w['end']} "
                     f"({w['shift_days']:+d} {'days' if en else 'ngày'})")
    for c in report["coordination"]:
        lines.append(f"{'coordinate with' if en else 'phối hợp với'}: {c['permit_no']} ({c['start']} – {c['end']})")
    lines.append(f"{'construction dossier' if en else 'hồ sơ xây dựng'}: {report['construction_dossier_code'] or no}")
    fee = report["fee_vnd"]
    lines.append(f"{'fee' if en else 'phí'}: " + (f"{fee:,} VND".replace(",", ".") if fee is not None else no))
    if report["fee_note"]:
        lines.append(f"  {report['fee_note']['en' if en else 'vi']}")
    lines.append(f"{'due on' if en else 'hạn giải quyết'}: {report['due_on']} "
                 f"({report['due_basis']['working_days']} {'working days' if en else 'ngày làm việc'})")
    return "\n".join(lines)

