"""Filters shared by the map, the exports and the API, and their parsing.

A :class:`Filter` is plain data.  :func:`parse_filter` reads one from
request arguments (``ward``, ``status``, ``procedure``, ``channel``,
``purpose``, ``kind``, ``from``, ``to``, ``q``, ``bbox``); each parameter is
repeatable or comma-separated.  In strict mode the first bad value raises
:class:`FilterError` naming the parameter; otherwise bad values are dropped
and described in the returned list of warnings.
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from dataclasses import dataclass, fields, replace

from gisapp import domain
from gisapp.errors import FilterError  # noqa: F401 - raised here, and imported from here by the rooms above


@dataclass(frozen=True)
class Filter:
    """What to select.  Empty tuples and ``None`` mean "no restriction"."""

    wards: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    procedures: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    purposes: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    q: str | None = None
    bbox: tuple[float, float, float, float] | None = None  # WGS84 lon/lat; west > east: across the antimeridian
    q_personal: bool = False  # ``q`` also searches owner names (signed-in staff only; not a URL parameter)

    def is_empty(self) -> bool:
        """True when nothing is restricted."""
        return self == Filter()

    def to_params(self) -> dict[str, str]:
        """URL parameters that reproduce this filter (comma-joined)."""
        out = {}
        for name, field_name in _CODE_PARAMS.items():
            values = getattr(self, field_name)
            if values:
                out[name] = ",".join(values)
        if self.date_from:
            out["from"] = self.date_from.isoformat()
        if self.date_to:
            out["to"] = self.date_to.isoformat()
        if self.q:
            out["q"] = self.q
        if self.bbox:
            out["bbox"] = ",".join(f"{v:.7f}".rstrip("0").rstrip(".") for v in self.bbox)
        return out

    def with_(self, **changes) -> Filter:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)


#: URL parameter → Filter attribute for the coded parameters.
_CODE_PARAMS = {
    "ward": "wards",
    "status": "statuses",
    "procedure": "procedures",
    "channel": "channels",
    "purpose": "purposes",
    "kind": "kinds",
}
_CODE_SETS = {
    "status": "status",
    "procedure": "procedure",
    "channel": "channel",
    "purpose": "purpose",
    "kind": "kind",
}
PARAMS = (*_CODE_PARAMS, "from", "to", "q", "bbox")


def _values(args, name: str) -> list[str]:
    raw = args.getlist(name) if hasattr(args, "getlist") else _as_list(args.get(name))
    out = []
    for item in raw:
        out.extend(v.strip() for v in str(item).split(",") if v.strip())
    return out


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def parse_date(text: str, param: str) -> dt.date:
    """An ISO date (YYYY-MM-DD) or :class:`FilterError`."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise FilterError(param, f"{text!r} is not a date (YYYY-MM-DD)") from None


def parse_bbox(text: str, param: str = "bbox", *, ogc: bool = False) -> tuple[float, float, float, float]:
    """``minlon,minlat,maxlon,maxlat`` in WGS84, checked for range and order.

    ``ogc``: as OGC API – Features Part 1 defines ``bbox``: six numbers too (``minlon,minlat,minheight,
    maxlon,maxlat,maxheight``; the heights are ignored), and a west edge greater than the east edge is a
    box across the antimeridian (kept so: ``geo.bbox_polygon`` makes it the union of its two halves).
    """
    parts = text.split(",")
    if len(parts) != 4 and not (ogc and len(parts) == 6):
        raise FilterError(param, "needs four or six numbers: minLon,minLat[,minHeight],maxLon,maxLat[,maxHeight]"
                          if ogc else "needs four numbers: minLon,minLat,maxLon,maxLat")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise FilterError(param, f"{text!r} has a value that is not a number") from None
    if not all(math.isfinite(v) for v in values):
        raise FilterError(param, "values must be finite numbers")
    x1, y1, x2, y2 = values if len(values) == 4 else (values[0], values[1], values[3], values[4])
    if not (-180 <= x1 <= 180 and -180 <= x2 <= 180 and -90 <= y1 <= 90 and -90 <= y2 <= 90):
        raise FilterError(param, "longitudes must lie in -180..180 and latitudes in -90..90")
    if ogc and y1 > y2:
        raise FilterError(param, "the south edge (minLat) is north of the north edge (maxLat)")
    if (x1 > x2 and not ogc) or y1 > y2:
        raise FilterError(param, "minimum is greater than maximum")
    return (x1, y1, x2, y2)


def parse_filter(args, *, known_wards=None, strict: bool = True, personal: bool = False) -> tuple[Filter, list[str]]:
    """Read a :class:`Filter` from request-like ``args``.

    ``known_wards`` (a collection of GSO codes) enables checking ward codes;
    ``personal`` lets ``q`` search owner names too (for signed-in staff).
    Returns the filter and, in lenient mode, one warning per ignored value.
    """
    warnings: list[str] = []

    def reject(err: FilterError):
        if strict:
            raise err
        warnings.append(str(err))

    values: dict = {}
    for param, attr in _CODE_PARAMS.items():
        accepted = []
        for v in _values(args, param):
            if param == "ward":
                ok = v.isdigit() and (known_wards is None or v in known_wards)
                if not ok:
                    reject(FilterError(param, f"unknown ward code {v!r}"))
                    continue
            else:
                code = v.upper()
                if code not in domain.CODE_SETS[_CODE_SETS[param]]:
                    reject(FilterError(param, f"unknown {param} code {v!r}"))
                    continue
                v = code
            if v not in accepted:
                accepted.append(v)
        values[attr] = tuple(accepted)
    for param, attr in (("from", "date_from"), ("to", "date_to")):
        items = _values(args, param)
        if items:
            try:
                values[attr] = parse_date(items[-1], param)
            except FilterError as err:
                reject(err)
    if values.get("date_from") and values.get("date_to") and values["date_from"] > values["date_to"]:
        reject(FilterError("from", "'from' is after 'to'; the date range was ignored"))
        values.pop("date_from")
        values.pop("date_to")
    q = " ".join(args.getlist("q") if hasattr(args, "getlist") else _as_list(args.get("q"))).strip()
    if len(q) > 200:
        reject(FilterError("q", "search text is longer than 200 characters"))
        q = q[:200]
    values["q"] = q or None
    raw_bbox = args.get("bbox")
    if raw_bbox:
        try:
            values["bbox"] = parse_bbox(str(raw_bbox))
        except FilterError as err:
            reject(err)
    return Filter(**values, q_personal=personal), warnings


class _FoldTable(dict):
    """``str.translate`` table: each character decomposed (NFD) without its marks, đ → d.

    Filled on demand; NFD decomposes character by character, so translating
    each character equals decomposing the whole text and dropping the marks.
    """

    def __missing__(self, code: int) -> str:
        decomposed = unicodedata.normalize("NFD", chr(code))
        value = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).replace("đ", "d").replace("Đ", "D")
        self[code] = value
        return value


_FOLD = _FoldTable()


def fold(text: str | None) -> str:
    """Lower-case ``text`` without diacritics (đ → d), for accent-blind search."""
    if not text:
        return ""
    return str(text).translate(_FOLD).lower()


def filter_fields() -> list[str]:
    """Names of :class:`Filter`'s attributes."""
    return [f.name for f in fields(Filter)]
