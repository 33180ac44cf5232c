"""Filters shared by the map, the exports, the tiles and the API, and their one parser.

A :class:`Filter` is plain data.  :func:`parse_filter` reads one from the
request arguments of a *surface*: the map pages (``page``), the map's data
(``map``: ``/data``), the exports (``export``), the vector tiles and
TileJSON (``tiles``) and the OGC API's items (``api``).  The table
:data:`SURFACES` says, per surface, which URL parameter fills which
:class:`Filter` field (the map's ``ward`` is the API's ``ward_code``, its
``from``/``to`` the API's ``datetime``), which other parameters its views
read, whether any other parameter is refused, and whether a bad value is an
error or a warning.  A bad value is the same :class:`FilterError` (400,
``InvalidParameterValue``, naming the parameter) on every strict surface,
and the same words in the warnings of the pages.

Every filter parameter: an empty value is as if absent; codes are
repeatable and comma-separated (case-blind but for ward codes); ``from``,
``to``, ``day`` and ``datetime`` take one date (the last ``from``/``to``/``day``,
the first ``datetime``), ``bbox`` the first box; repeated ``q`` values are joined.

``day`` (every surface, the API's vendor parameter too) selects what is
*active* that day: a feature whose period holds it, as
:func:`gisapp.store.base.attribute_clauses` defines per layer.

``as_of`` (every surface, the same name) takes one day, read by
:func:`parse_as_of`: the data as it was at the end of that day.

``construction_dossier_code`` (the API's, a property filter of the sidewalk permits) selects the permits
naming one of the dossier codes given, exactly (no search: ``XD-1`` is not ``XD-12``); a code no permit
names matches nothing.  :attr:`Filter.involving` (the findings naming a feature) is no URL parameter.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import dataclass, fields, replace

from gisapp import domain
from gisapp.errors import FilterError


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
    day: dt.date | None = None  # features active that day (see gisapp.store.base.attribute_clauses)
    q: str | None = None
    bbox: tuple[float, float, float, float] | None = None  # WGS84 lon/lat; west > east: across the antimeridian
    q_personal: bool = False  # ``q`` also searches owner names (signed-in staff only; not a URL parameter)
    as_of: dt.date | None = None  # the data as it was at the end of that day (:func:`parse_as_of`)
    dossiers: tuple[str, ...] = ()  # sidewalk permits naming one of these dossier codes (construction_dossier_code)
    involving: tuple[str, ...] = ()  # findings naming one of these features (a_id or b_id; not a URL parameter)

    def is_empty(self) -> bool:
        """True when nothing is restricted."""
        return self == Filter()

    def to_params(self) -> dict[str, str]:
        """The map's URL parameters that reproduce this filter (codes comma-joined)."""
        out = {}
        for name, attr in MAP_PARAMS.items():
            value = getattr(self, attr)
            if not value:
                continue
            if attr == "bbox":
                value = ",".join(f"{v:.7f}".rstrip("0").rstrip(".") for v in value)
            elif isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = ",".join(value)
            out[name] = value
        return out

    def with_(self, **changes) -> Filter:
        """A copy with ``changes`` applied."""
        return replace(self, **changes)


#: Coded Filter fields → their code set in :data:`gisapp.domain.CODE_SETS` (ward codes are the store's).
_CODE_SETS = {"statuses": "status", "procedures": "procedure", "channels": "channel", "purposes": "purpose",
              "kinds": "kind"}
CODE_FIELDS = ("wards", *_CODE_SETS)
#: Filter fields of exact values (no code set): an API property filter each, matched by equality.
EXACT_FIELDS = ("dossiers",)
#: The most values one exact-value parameter takes (each is a bound parameter of the query).
EXACT_MAX = 100
#: The field a parameter fills when it is a date interval (``datetime``): both dates.
PERIOD = "date_from/date_to"
#: The map's filter parameters (its pages, its data, the exports, the tiles) → the Filter field each fills.
MAP_PARAMS = {"ward": "wards", "status": "statuses", "procedure": "procedures", "channel": "channels",
              "purpose": "purposes", "kind": "kinds", "from": "date_from", "to": "date_to", "day": "day", "q": "q",
              "bbox": "bbox", "as_of": "as_of"}
#: The OGC API's: the property filters by the property's name, ``datetime`` (RFC 3339) for both dates.
API_PARAMS = {"ward_code": "wards", "status": "statuses", "procedure": "procedures", "channel": "channels",
              "purpose": "purposes", "kind": "kinds", "construction_dossier_code": "dossiers", "datetime": PERIOD,
              "day": "day", "q": "q", "bbox": "bbox", "as_of": "as_of"}


@dataclass(frozen=True)
class Surface:
    """Where a filter comes from: its parameters, the other parameters its views read, its rules."""

    params: dict[str, str]  # URL parameter → the Filter field it fills (:data:`PERIOD`: both dates)
    others: tuple[str, ...] | None = None  # the other parameters it takes, any else a 400; None: others ignored
    strict: bool = True  # the first bad value is a FilterError; else each is dropped with a warning
    ogc: bool = False  # OGC API rules: bbox of 4 or 6 numbers, west > east across the antimeridian, and a
    #                    property filter only on a collection that has the property


#: The table: surface → its parameters and rules.
SURFACES = {
    "page": Surface(MAP_PARAMS, strict=False),  # the HTML pages warn and render; other parameters are theirs
    "map": Surface(MAP_PARAMS),  # /data: the map's requests also carry zoom, set …
    "export": Surface(MAP_PARAMS, others=("crs",)),
    "tiles": Surface(MAP_PARAMS, others=()),  # tiles and TileJSON
    "api": Surface(API_PARAMS, others=("f", "lang", "limit", "offset"), ogc=True),
}


#: Ward codes to check against: the codes, a function returning them (``None``: no check), or ``None``.
KnownWards = Collection[str] | Callable[[], Collection[str] | None] | None


def surface_params(surface: str, layer=None) -> dict[str, str]:
    """The filter parameters ``surface`` takes (on the API, for ``layer``: its properties only)."""
    rules = SURFACES[surface]
    if layer is None or not rules.ogc:
        return dict(rules.params)
    return {p: f for p, f in rules.params.items()
            if f not in (*CODE_FIELDS, *EXACT_FIELDS) or p in layer.field_names}


def accepted_params(surface: str, layer=None) -> tuple[str, ...]:
    """Every parameter ``surface`` takes: its filter's and the others its views read."""
    return (*surface_params(surface, layer), *(SURFACES[surface].others or ()))


def refuse_unknown(args, allowed) -> None:
    """:class:`FilterError` for the first parameter (by name) not in ``allowed``: a mistyped filter is never
    taken for no filter (OGC API /req/core/query-param-unknown)."""
    unknown = sorted(set(args.keys()) - set(allowed))
    if unknown:
        raise FilterError(unknown[0], f"unknown parameter; this endpoint accepts {', '.join(allowed)}")


def parse_filter(args, surface: str, *, layer=None, known_wards: KnownWards = None,
                 personal: bool = False) -> tuple[Filter, list[str]]:
    """Read a :class:`Filter` from request-like ``args`` (a MultiDict or a dict) as ``surface`` names it.

    ``layer``: the API's collection (its properties are its filters); ``known_wards``: the GSO codes ward
    codes are checked against, or a function returning them (called only when a ward is named; ``None``:
    digits suffice); ``personal`` lets ``q`` search owner names too (signed-in staff).  Returns the filter
    and, on a lenient surface, one warning (``"<param>: <message>"``) per value it dropped.
    """
    rules = SURFACES[surface]
    params = surface_params(surface, layer)
    if rules.others is not None:
        refuse_unknown(args, (*params, *rules.others))
    warnings: list[str] = []

    def reject(err: FilterError):
        if rules.strict:
            raise err
        warnings.append(str(err))

    values: dict = {}
    for param, attr in params.items():
        try:
            values.update(_read(args, param, attr, rules, reject, known_wards))
        except FilterError as err:
            reject(err)
    _check_range(values, params, reject)
    return Filter(**values, q_personal=personal), warnings


def _read(args, param: str, attr: str, rules: Surface, reject, known_wards) -> dict:
    """The Filter fields ``param`` fills; a bad code is rejected alone, any other bad value raises."""
    if attr in CODE_FIELDS:
        return {attr: _codes(_values(args, param), param, attr, reject, known_wards)}
    if attr in EXACT_FIELDS:
        items = list(dict.fromkeys(_values(args, param)))
        if len(items) > EXACT_MAX:
            raise FilterError(param, f"at most {EXACT_MAX} values")
        return {attr: tuple(items)}
    if attr in ("date_from", "date_to", "day"):
        items = _values(args, param)
        return {attr: parse_date(items[-1], param)} if items else {}
    if attr == PERIOD:
        text = _first(args, param)
        return dict(zip(("date_from", "date_to"), parse_datetime(text, param), strict=True)) if text else {}
    if attr == "bbox":
        text = _first(args, param)
        return {"bbox": parse_bbox(text, param, ogc=rules.ogc)} if text else {}
    if attr == "q":
        return {"q": _text(args, param, reject)}
    if attr == "as_of":
        items = _values(args, param)
        return {"as_of": parse_as_of(items[-1], param)} if items else {}
    raise ValueError(f"no reader for the Filter field {attr!r}")  # pragma: no cover - the table is checked


def _codes(items: list[str], param: str, attr: str, reject, known_wards) -> tuple[str, ...]:
    """The accepted codes, in order, once each: ward codes as given, other codes upper-cased."""
    accepted: list[str] = []
    for v in items:
        if attr == "wards":
            known = known_wards() if callable(known_wards) else known_wards
            if not v.isdigit() or (known is not None and v not in known):
                reject(FilterError(param, f"unknown ward code {v!r}"))
                continue
        else:
            codes = domain.CODE_SETS[_CODE_SETS[attr]]
            if v.upper() not in codes:
                reject(FilterError(param, f"unknown {_CODE_SETS[attr]} code {v!r}; codes: {', '.join(codes)}"))
                continue
            v = v.upper()
        if v not in accepted:
            accepted.append(v)
    return tuple(accepted)


def _text(args, param: str, reject) -> str | None:
    """The search text: every value joined, at most 200 characters (a longer one is cut, or refused)."""
    q = " ".join(str(v) for v in _as_list(args, param)).strip()
    if len(q) > 200:
        reject(FilterError(param, "search text is longer than 200 characters"))
        q = q[:200]
    return q or None


def _check_range(values: dict, params: dict, reject) -> None:
    """``from`` after ``to``: both dropped (a warning) or refused."""
    if values.get("date_from") and values.get("date_to") and values["date_from"] > values["date_to"]:
        name = next(p for p, f in params.items() if f == "date_from")
        reject(FilterError(name, "'from' is after 'to'; the date range was ignored"))
        values.pop("date_from")
        values.pop("date_to")


def _as_list(args, name: str) -> list:
    if hasattr(args, "getlist"):
        return args.getlist(name)
    value = args.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _values(args, name: str) -> list[str]:
    """Every non-empty value of ``name``, repeated or comma-separated, stripped."""
    out: list[str] = []
    for item in _as_list(args, name):
        out.extend(v.strip() for v in str(item).split(",") if v.strip())
    return out


def _first(args, name: str) -> str | None:
    """The first value of ``name``; an empty one is none."""
    items = _as_list(args, name)
    return str(items[0]) if items and items[0] not in (None, "") else None


def parse_date(text: str, param: str) -> dt.date:
    """An ISO date (YYYY-MM-DD) or :class:`FilterError`."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise FilterError(param, f"{text!r} is not a date (YYYY-MM-DD)") from None


#: The earliest day ``as_of`` may name; the latest is a year after today (in the district).
AS_OF_FIRST = dt.date(1990, 1, 1)


def parse_as_of(text: str, param: str = "as_of", *, today: dt.date | None = None) -> dt.date:
    """The day of an ``as_of`` parameter: ``YYYY-MM-DD`` from 1990-01-01 to a year after today, or :class:`FilterError`.

    The one parser of "as of a day" for every surface (pages, ``/data``, exports, tiles, the API); other
    day parameters (the map's ``date``) may call it with their own ``param``.
    """
    text = str(text).strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise FilterError(param, f"{text!r} is not a date (YYYY-MM-DD)")
    day = parse_date(text, param)
    today = today or dt.datetime.now(LOCAL_TIME).date()
    last = today.replace(year=today.year + 1) if not (today.month == 2 and today.day == 29) \
        else dt.date(today.year + 1, 2, 28)
    if day < AS_OF_FIRST:
        raise FilterError(param, f"{text!r} is before {AS_OF_FIRST.isoformat()}")
    if day > last:
        raise FilterError(param, f"{text!r} is more than a year after today ({today.isoformat()})")
    return day


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


_DATE = r"\d{4}-\d{2}-\d{2}"
# RFC 3339 date or date-time (the "T" and "Z" in either case, section 5.6); also "YYYY-MM-DDT" and partial
# times, which GDAL's OAPIF driver sends.  Groups: date, hour, minute, second, offset.
_INSTANT = re.compile(rf"^({_DATE})(?:[Tt](?:(\d{{2}})(?::(\d{{2}})(?::(\d{{2}})(?:\.\d+)?)?)?)?"
                      r"([Zz]|[+-]\d{2}:?\d{2})?)?$")
#: The district's time zone: UTC+7 all year (Asia/Ho_Chi_Minh); a date-time is compared by its day there.
LOCAL_TIME = dt.timezone(dt.timedelta(hours=7), "Asia/Ho_Chi_Minh")


def parse_datetime(text: str, param: str = "datetime") -> tuple[dt.date | None, dt.date | None]:
    """OGC API ``datetime``: an instant or an interval (``a/b``, ``../b``, ``a/..``) → (from, to) dates."""
    parts = text.split("/")
    if len(parts) > 2:
        raise FilterError(param, f"{text!r} is neither an instant nor an interval start/end")
    bounds = [_instant(p, param) if p not in ("..", "") else None for p in parts]
    if len(parts) == 1:
        if bounds[0] is None:
            raise FilterError(param, f"{text!r} is not a date or date-time (RFC 3339)")
        return bounds[0], bounds[0]
    start, end = bounds
    if start and end and start > end:
        raise FilterError(param, "the interval's start is after its end")
    return start, end


def _instant(text: str, param: str) -> dt.date:
    """The day of an RFC 3339 date or date-time in the district (:data:`LOCAL_TIME`).

    A date is that day; a date-time with an offset (``Z``, ``+hh:mm``) is converted to UTC+7 first, so
    ``2022-03-01T23:30:00-05:00`` is 2 March; one without an offset is taken as local time.  Hours
    above 23, minutes above 59, seconds above 60 (a leap second) and offsets beyond ±23:59 are a 400.
    """
    m = _INSTANT.match(text.strip())
    if not m:
        raise FilterError(param, f"{text!r} is not a date or date-time (RFC 3339)")
    day, hour, minute, second, offset = m.groups()
    try:
        date = dt.date.fromisoformat(day)
    except ValueError:
        raise FilterError(param, f"{text!r} is not a valid date") from None
    if int(hour or 0) > 23 or int(minute or 0) > 59 or int(second or 0) > 60:
        raise FilterError(param, f"{text!r} is not a valid time (hours 00-23, minutes 00-59, seconds 00-60)")
    if offset is None or hour is None:
        return date
    if offset in ("Z", "z"):
        zone = dt.UTC
    else:
        hours, minutes = int(offset[1:3]), int(offset[-2:])
        if hours > 23 or minutes > 59:
            raise FilterError(param, f"{text!r} has an impossible UTC offset {offset!r}")
        zone = dt.timezone((-1 if offset[0] == "-" else 1) * dt.timedelta(hours=hours, minutes=minutes))
    moment = dt.datetime.combine(date, dt.time(int(hour), int(minute or 0), min(int(second or 0), 59)), zone)
    try:
        return moment.astimezone(LOCAL_TIME).date()
    except OverflowError:  # 0001-01-01T00:00+08:00, 9999-12-31T23:00-05:00: beyond the calendar here
        raise FilterError(param, f"{text!r} lies outside the years 1-9999 in the district's time") from None


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
