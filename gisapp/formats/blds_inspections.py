"""BLDS Inspections (permitdata.org): one CSV row per inspection, never a photo or a person's name.

Columns: ``PermitNum`` (the dossier code or sidewalk permit number; for an
occupancy nobody permitted, the id of the inspection that recorded it, which
its follow-ups name too), ``InspType`` / ``InspTypeMapped``, ``Result`` /
``ResultMapped`` (``Passed``, ``Rejected``, ``Partial``, ``Cancelled``),
``InspectedDate`` (``YYYY-MM-DD``, the district's day) and
``InspectionNotes``.  The inspector (a staff account) is not exported.
Text cells that a spreadsheet would run as a formula are made inert.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator

import pyarrow as pa

from gisapp import domain
from gisapp.formulas import defuse
from gisapp.inspections import Inspection

COLUMNS = ("PermitNum", "InspType", "InspTypeMapped", "Result", "ResultMapped", "InspectedDate", "InspectionNotes")
#: Our outcomes → ResultMapped.
RESULT_MAPPED = {"PASSED": "Passed", "FAILED": "Rejected", "UNABLE": "Cancelled"}
#: Our types → InspTypeMapped (BLDS fixes no list; these follow its examples).
TYPE_MAPPED = {"SITE_CHECK": "Site Inspection", "OCCUPANCY_CHECK": "Right-of-Way Inspection",
               "FOLLOW_UP": "Reinspection", "FINAL": "Final Inspection"}


def row(i: Inspection) -> tuple[str, ...]:
    """The BLDS row of one inspection."""
    permit = i.target_key if i.target_layer in ("construction_permits", "sidewalk_permits", "inspections") \
        else i.inspection_id
    return (permit or "", domain.label("inspection_type", i.inspection_type, "en"), TYPE_MAPPED[i.inspection_type],
            domain.label("outcome", i.outcome, "en"), RESULT_MAPPED[i.outcome], i.day.isoformat(), i.notes)


def csv_chunks(items: Iterable[Inspection]) -> Iterator[str]:
    """The CSV text (UTF-8 with BOM for Excel, CRLF lines), a chunk per 500 rows."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    buf.write("\ufeff")
    writer.writerow(COLUMNS)
    for n, i in enumerate(items, 1):
        writer.writerow(defuse(pa.array(row(i), pa.string())).to_pylist())
        if n % 500 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()
