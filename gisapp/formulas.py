"""Text a spreadsheet would run as a formula, made inert: one guard for every CSV gisapp writes.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
is evaluated by Excel and LibreOffice (``=HYPERLINK(…)``, ``=cmd|' /C calc'!A0``);
such text is prefixed with ``'``, which the spreadsheet shows as plain text.
Used by the CSV export and by the rejects files of imports.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

FORMULA_START = r"^[=+\-@\t\r]"


def defuse(arr: pa.Array) -> pa.Array:
    """Text a spreadsheet would evaluate (``=…``, ``+…``, ``-…``, ``@…``) prefixed with ``'``."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)) or not len(arr):
        return arr
    risky = pc.fill_null(pc.match_substring_regex(arr, FORMULA_START), False)
    if not pc.any(risky).as_py():
        return arr
    return pc.if_else(risky, pc.binary_join_element_wise("'", arr, ""), arr)
