"""``gisapp report``: the printed reports of ``/reports/…`` and ``/permits/<code>.pdf``, as PDF files."""

from __future__ import annotations

from pathlib import Path

import click
from werkzeug.datastructures import MultiDict

from gisapp import privacy
from gisapp.cli.context import pass_ctx
from gisapp.errors import RequestError
from gisapp.filters import parse_as_of
from gisapp.reports import documents, review


def _options(ctx, lang: str) -> documents.Options:
    return documents.Options(lang=lang, base_url=ctx.config.get("BASE_URL") or "http://127.0.0.1:5000",
                             personal=privacy.show_personal(privacy.OPERATOR),
                            fee_table=str(ctx.config["FEE_TABLE"]))


def _write(output: str, body: bytes) -> None:
    Path(output).write_bytes(body)
    click.echo(f"wrote {output} ({len(body):,} bytes)")


@click.group("report")
def report():
    """Printable PDF reports (A4): the review report of a period, the sheet of one dossier."""


@report.command("review")
@click.option("--from", "date_from", help="Dossiers received from this date (YYYY-MM-DD).")
@click.option("--to", "date_to", help="… up to this date (YYYY-MM-DD).")
@click.option("--ward", multiple=True, help="Ward code (GSO); repeatable or comma-separated; default: the district.")
@click.option("--as-of", "as_of", help="The figures as they were at the end of this day (YYYY-MM-DD), as the "
                                       "dashboard's as_of counts them; default: the data's own date.")
@click.option("--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="PDF file to write.")
@pass_ctx
def review_command(ctx, date_from, date_to, ward, as_of, lang, output):
    """The review report of a period: figures, per-ward table, monthly chart, maps, sidewalk section, lists."""
    args: MultiDict[str, str] = MultiDict([("ward", w) for w in ward])
    for name, value in (("from", date_from), ("to", date_to), ("as_of", as_of)):
        if value:
            args.add(name, value)
    store = ctx.store()
    try:
        query = review.parse_query(args, store.ward_codes() or None)
    except RequestError as err:
        raise click.UsageError(err.description) from None
    try:
        body = documents.review_pdf(store, query, ctx.config["CALENDAR"], _options(ctx, lang))
    except RequestError as err:
        raise click.ClickException(err.description) from None
    _write(output, body)


@report.command("dossier")
@click.argument("code")
@click.option("--as-of", "as_of", help="Its status and timeliness at the end of this day (YYYY-MM-DD), as the "
                                       "permit page's as_of shows them; default: today's data.")
@click.option("--lang", type=click.Choice(["vi", "en"]), default="vi", show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="PDF file to write.")
@pass_ctx
def dossier_command(ctx, code, as_of, lang, output):
    """The one-page sheet of dossier CODE (with personal fields: the operator sees everything)."""
    try:
        day = parse_as_of(as_of) if as_of else None
    except RequestError as err:
        raise click.UsageError(err.description) from None
    try:
        body = documents.dossier_pdf(ctx.store(), code, ctx.config["CALENDAR"], _options(ctx, lang), as_of=day)
    except RequestError as err:
        raise click.ClickException(err.description) from None
    _write(output, body)
