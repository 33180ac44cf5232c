"""OGC API – Features, Part 1 (Core, GeoJSON, HTML, OpenAPI 3.0): the core, without Flask.

Like pygeoapi's API core, each function takes parsed request arguments, the
store and the API's base URL, and returns a document (a dict) or, for
items, the response parts; ``gisapp/web/views/api.py`` is a thin layer over it.
The items' filter is read by the one parser of :mod:`gisapp.filters`
(surface ``api``: ``datetime``, ``bbox``, ``q`` and the property filters).
Bad parameters raise :class:`gisapp.errors.FilterError` (400), unknown
collections or features :class:`gisapp.errors.NotFound` (404).

Where the standard and the issue differ, the standard wins:

- ``limit`` above the maximum (``MAX_ITEMS``, 10,000) is clamped to it, not
  refused (/rec/core/limit-response-1); 0, negatives and non-integers are 400.
- A query parameter the API definition does not declare is a 400
  (/req/core/query-param-unknown).  Every parameter the service accepts is
  declared in the OpenAPI document, per collection.
- ``datetime`` selects by the layer's own dates: received date
  (construction permits), permit period (sidewalk permits), overlap
  period (findings), validity (wards).  Dates are whole days: a date-time
  (RFC 3339: ``T``/``Z`` in either case; impossible times are a 400) selects
  the day it falls on in the district, UTC+7 (``2022-03-01T23:30:00-05:00``
  is 2 March); a date is the day it names.
- ``bbox`` takes 4 or 6 numbers (heights ignored); a west edge greater than
  the east edge is a box across the antimeridian, the union of its two
  halves (/req/core/fc-bbox-definition).
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import quote, urlencode

import orjson

from gisapp import domain, geo
from gisapp.api import changes, processes
from gisapp.errors import FilterError, NotFound
from gisapp.filters import CODE_FIELDS, EXACT_FIELDS, EXACT_MAX, SURFACES, Filter
from gisapp.formats import geojson
from gisapp.schema import LAYERS, Layer
from gisapp.store import Store

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
]
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
JSON = "application/json"
GEOJSON = "application/geo+json"
HTML = "text/html"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"
SCHEMA_JSON = "application/schema+json"
DEFAULT_LIMIT = 100
#: Property filters: query parameter → Filter attribute (only on layers that have the field); from the filter's table.
PROPERTY_PARAMS = {p: f for p, f in SURFACES["api"].params.items() if f in (*CODE_FIELDS, *EXACT_FIELDS)}
#: The parameters of every endpoint (the items take their filter's and ``limit``/``offset`` too).
COMMON_PARAMS = ("f", "lang")
#: Languages of the HTML pages (``lang``).
LANGS = ("vi", "en")
TITLE = "gisapp — OGC API – Features"
DESCRIPTION = ("Construction-permit dossiers, sidewalk-use permits, overlap findings and ward boundaries "
               "of Cẩm Lệ district (Đà Nẵng), in WGS84 longitude/latitude.")


# -- parameters ---------------------------------------------------------------

def collection_layer(collection_id: str) -> Layer:
    """The layer served as ``collection_id``, or a 404."""
    lay = LAYERS.get(collection_id)
    if lay is None:
        raise NotFound(f"no collection {collection_id!r}; collections: {', '.join(LAYERS)}")
    return lay


def property_params(layer: Layer) -> list[str]:
    """The property filters ``layer`` offers (its queryables)."""
    return [p for p in PROPERTY_PARAMS if p in layer.field_names]


def check_lang(args) -> None:
    """400 for a ``lang`` other than the languages of the pages (``vi``, ``en``; empty means none)."""
    lang = args.get("lang")
    if lang and lang not in LANGS:
        raise FilterError("lang", f"{lang!r} is not offered; use one of {', '.join(LANGS)}")


def output_format(args, prefers_html: bool, *, offered=("json", "html")) -> str:
    """``json`` or ``html``: the ``f`` parameter, else what the client's Accept header prefers."""
    f = args.get("f")
    if f is None or f == "":
        return "html" if prefers_html and "html" in offered else "json"
    if f not in offered:
        raise FilterError("f", f"{f!r} is not offered; use one of {', '.join(offered)}")
    return f


def parse_limit(text: str | None, max_items: int) -> int:
    """``limit``: default 100; above ``max_items`` clamped to it (OGC); 0, negative or not an integer → 400."""
    if text is None or text == "":
        return min(DEFAULT_LIMIT, max_items)
    if not re.fullmatch(r"\+?\d+", text.strip()):
        raise FilterError("limit", f"{text!r} is not a positive integer")
    value = int(text)
    if value < 1:
        raise FilterError("limit", "must be at least 1")
    return min(value, max_items)


#: The largest offset a database takes (a signed 64-bit integer).
MAX_OFFSET = 2**63 - 1


def parse_offset(text: str | None) -> int:
    """``offset``: a non-negative integer (default 0)."""
    if text is None or text == "":
        return 0
    if not re.fullmatch(r"\+?\d+", text.strip()):
        raise FilterError("offset", f"{text!r} is not a non-negative integer")
    value = int(text)
    if value > MAX_OFFSET:
        raise FilterError("offset", f"must be at most {MAX_OFFSET}")
    return value


# -- links --------------------------------------------------------------------

def _link(href: str, rel: str, type_: str, title: str | None = None) -> dict:
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


def _url(base: str, path: str, params: dict | None = None) -> str:
    query = urlencode(params or {}, doseq=True)
    return f"{base}{path}" + (f"?{query}" if query else "")


def _self_links(base: str, path: str, fmt: str, json_type: str = JSON, params: dict | None = None) -> list[dict]:
    params = {k: v for k, v in (params or {}).items() if k != "f"}
    links = [
        _link(_url(base, path, {**params, "f": "json"}), "self" if fmt == "json" else "alternate", json_type,
              "This document as JSON"),
        _link(_url(base, path, {**params, "f": "html"}), "self" if fmt == "html" else "alternate", HTML,
              "This document as HTML"),
    ]
    return links


# -- documents ----------------------------------------------------------------

def landing(base: str, fmt: str = "json") -> dict:
    """The landing page: title, description and links to the API, conformance and collections."""
    return {
        "title": TITLE,
        "description": DESCRIPTION,
        "links": [
            *_self_links(base, "", fmt),
            _link(f"{base}/openapi?f=json", "service-desc", OPENAPI, "The API definition (OpenAPI 3.0)"),
            _link(f"{base}/openapi?f=html", "service-doc", HTML, "The API documentation"),
            _link(f"{base}/conformance?f=json", "conformance", JSON, "Conformance classes"),
            _link(f"{base}/collections?f=json", "data", JSON, "The collections"),
            _link(f"{base}/processes", processes.REL_PROCESSES, JSON, "The processes (OGC API – Processes)"),
        ],
    }


def conformance(base: str, fmt: str = "json") -> dict:
    """The conformance classes the API implements."""
    return {"conformsTo": [*CONFORMANCE, *processes.CONFORMANCE], "links": _self_links(base, "/conformance", fmt)}


def collection_doc(store: Store, layer: Layer, base: str, extent_info=None) -> dict:
    """One collection: id, titles, spatial (WGS84) and temporal extent, item type, CRS list, links."""
    path = f"/collections/{layer.name}"
    spatial = None
    if extent_info is not None and extent_info.extent is not None:
        spatial = [round(v, 7) for v in _wgs84_bounds(extent_info.extent)]
    temporal = _temporal_extent(store, layer)
    extent: dict = {}
    if spatial:
        extent["spatial"] = {"bbox": [spatial], "crs": CRS84}
    extent["temporal"] = {"interval": [temporal], "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    return {
        "id": layer.name,
        "title": layer.vi,
        "description": f"{layer.en}. Dates filter on {_temporal_meaning(layer)}.",
        "itemType": "feature",
        "crs": [CRS84],
        "storageCrs": "http://www.opengis.net/def/crs/EPSG/0/5899",
        "extent": extent,
        "links": [
            _link(f"{base}{path}?f=json", "self", JSON, "This collection as JSON"),
            _link(f"{base}{path}?f=html", "alternate", HTML, "This collection as HTML"),
            _link(f"{base}{path}/items?f=json", "items", GEOJSON, "The features (GeoJSON)"),
            _link(f"{base}{path}/items?f=html", "items", HTML, "The features (HTML)"),
            _link(f"{base}{path}/queryables?f=json", "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                  SCHEMA_JSON, "Queryable properties"),
        ],
    }


def _temporal_meaning(layer: Layer) -> str:
    return {
        "construction_permits": "the received date (received_on)",
        "sidewalk_permits": "the permit period (start_on–end_on)",
        "findings": "the overlap period (overlap_start–overlap_end)",
        "wards": "the validity (valid_from–valid_to)",
    }.get(layer.name, "its date")


def _wgs84_bounds(extent) -> tuple[float, float, float, float]:
    import shapely

    box = shapely.segmentize(shapely.box(*extent), max(extent[2] - extent[0], extent[3] - extent[1], 1.0) / 16)
    return tuple(geo.transform([box])[0].bounds)


def _temporal_extent(store: Store, layer: Layer) -> list:
    if not layer.date_field:
        return [None, None]
    first, last = store.date_range(layer.name)
    return [f"{first}T00:00:00Z" if first else None, f"{last}T23:59:59Z" if last else None]


def collections(store: Store, base: str, fmt: str = "json") -> dict:
    """Every collection, with links to the list itself."""
    infos = {i.name: i for i in store.info()}
    return {
        "links": _self_links(base, "/collections", fmt),
        "collections": [collection_doc(store, lay, base, infos.get(name)) for name, lay in LAYERS.items()],
    }


def collection(store: Store, collection_id: str, base: str) -> dict:
    """One collection's document (404 when unknown)."""
    lay = collection_layer(collection_id)
    infos = {i.name: i for i in store.info()}
    return collection_doc(store, lay, base, infos.get(lay.name))


def queryables(collection_id: str, base: str) -> dict:
    """The queryable properties of a collection as a JSON Schema."""
    lay = collection_layer(collection_id)
    props: dict[str, dict] = {}
    for param in property_params(lay):
        field = lay.field(param)
        entry: dict[str, object] = {"title": field.en, "description": field.vi, "type": "string"}
        if field.codes:
            entry["enum"] = list(domain.CODE_SETS[field.codes])
        props[param] = entry
    props["geometry"] = {"$ref": "https://geojson.org/schema/MultiPolygon.json"}
    if lay.date_field:
        props["datetime"] = {"title": "Date filter", "description": _temporal_meaning(lay),
                             "type": "string", "format": "date"}
        props["as_of"] = {"title": "As of day (vendor parameter)", "type": "string", "format": "date",
                          "description": "The data as it was at the end of that day (status from the history)"}
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": f"{base}/collections/{lay.name}/queryables",
        "type": "object",
        "title": lay.en,
        "properties": props,
        "additionalProperties": False,
    }


# -- items --------------------------------------------------------------------

class ItemsPage:
    """One page of items: the filter, paging, the counts and the rows, with the links between pages.

    ``flt`` is the request's filter (``gisapp.filters.parse_filter(args, "api", layer=…)``);
    ``fields`` are the properties served (personal ones only to signed-in staff).
    """

    def __init__(self, store: Store, layer: Layer, flt: Filter, args, base: str, *, max_items: int, fields: list[str]):
        self.store, self.layer, self.base, self.fields = store, layer, base, list(fields)
        self.flt = flt
        self.limit = parse_limit(args.get("limit"), max_items)
        self.offset = parse_offset(args.get("offset"))
        # the properties as the store keeps their JSON text when it does (one text a feature, no dict)
        page = store.page(layer.name, self.flt, fields=self.fields, limit=self.limit, offset=self.offset, texts=True)
        self.matched, self.rows, self.texts = page.matched, page.rows, page.texts
        # as of a day the store gave each row as it was then, in the page's own query (Page.known)
        self.without_history: int | None = None if page.known is None else page.known.count(False)
        self.returned = len(self.rows)
        self.params = {k: args.getlist(k) if hasattr(args, "getlist") else args.get(k)
                       for k in args.keys() if k not in ("f", "offset", "limit")}

    def links(self, fmt: str) -> list[dict]:
        """self/alternate, next and prev (when there are such pages), and the collection."""
        path = f"/collections/{self.layer.name}/items"
        paging = {**self.params, "limit": self.limit}
        here = {**paging, "offset": self.offset} if self.offset else paging
        links = _self_links(self.base, path, fmt, GEOJSON, here)
        if self.offset + self.returned < self.matched:
            links.append(_link(_url(self.base, path, {**paging, "offset": self.offset + self.limit, "f": "json"}),
                               "next", GEOJSON, "Next page"))
        if self.offset > 0:  # the page before, or past the end the last page: never a page beyond the data
            prev = max(0, min(self.offset - self.limit, self.matched - self.limit))
            links.append(_link(_url(self.base, path, {**paging, "offset": prev, "f": "json"}),
                               "prev", GEOJSON, "Previous page"))
        links.append(_link(f"{self.base}/collections/{self.layer.name}?f=json", "collection", JSON,
                           "The collection"))
        return links

    def members(self, fmt: str = "json") -> dict:
        """The FeatureCollection's members besides ``features``."""
        out = {
            "numberMatched": self.matched,
            "numberReturned": self.returned,
            "timeStamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "links": self.links(fmt),
        }
        if self.without_history is not None:  # as_of: features of the page shown with their current status
            out["asOf"] = self.flt.as_of.isoformat() if self.flt.as_of else None
            out["numberWithoutHistory"] = self.without_history
        return out

    def geojson(self) -> bytes:
        """The page as a GeoJSON FeatureCollection."""
        if self.texts:
            return geojson.texts_collection(self.rows, self.members("json"))
        return geojson.rows_collection(self.rows, self.fields, self.members("json"))

    def ids(self) -> list[str]:
        """The page's feature ids."""
        return [str(r[0]) for r in self.rows]

    def properties(self) -> list[dict]:
        """The page's properties, one dict per feature (dates as ISO text), for the HTML view."""
        if self.texts:  # the same values: dates are ISO text in it, numbers read back as written
            return [orjson.loads(r[1]) for r in self.rows]
        n = len(self.fields)
        return [{f: (v.isoformat() if isinstance(v, dt.date) else v) for f, v in zip(self.fields, r[1:n + 1])}
                for r in self.rows]


def item_json(store: Store, collection_id: str, feature_id: str, base: str, fields: list[str]) -> bytes:
    """One feature as GeoJSON with its links (404 when unknown)."""
    lay = collection_layer(collection_id)
    frame = item_frame(store, lay, feature_id)
    href = f"{base}/collections/{lay.name}/items/{quote(feature_id, safe='')}"
    links = [
        _link(f"{href}?f=json", "self", GEOJSON, "This feature as GeoJSON"),
        _link(f"{href}?f=html", "alternate", HTML, "This feature as HTML"),
        _link(f"{base}/collections/{lay.name}?f=json", "collection", JSON, "The collection"),
    ]
    return geojson.dumps_feature(frame, lay, fields, {"links": links})


def item_frame(store: Store, layer: Layer, feature_id: str):
    """The feature whose key is ``feature_id``, or a 404."""
    frame = store.get(layer.name, feature_id)
    if not len(frame):
        raise NotFound(f"collection {layer.name!r} has no feature {feature_id!r}")
    return frame


# -- the API definition -------------------------------------------------------

def _param(name: str, schema: dict, description: str, *, required: bool = False, where: str = "query",
           explode: bool | None = None) -> dict:
    out = {"name": name, "in": where, "required": required, "description": description, "schema": schema}
    if explode is not None:
        out.update(style="form", explode=explode)
    return out


def _parameters(max_items: int) -> dict:
    params = {
        "f": _param("f", {"type": "string", "enum": ["json", "html"]},
                    "Output format; without it the Accept header decides (JSON unless HTML is preferred)."),
        "lang": _param("lang", {"type": "string", "enum": list(LANGS)},
                       "Language of HTML pages; another value is a 400."),
        "bbox": _param("bbox", {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
                       "minLon,minLat,maxLon,maxLat in WGS84 (CRS84), or with heights minLon,minLat,minHeight,"
                       "maxLon,maxLat,maxHeight (heights ignored); a feature matches when its geometry "
                       "intersects the box. A minLon greater than maxLon is a box across the antimeridian. "
                       "Out-of-range values or a minLat greater than maxLat are a 400.", explode=False),
        "datetime": _param("datetime", {"type": "string"},
                           "A date or date-time (RFC 3339), or an interval start/end where either end may be "
                           "'..' (open). Matches on the collection's own dates, by whole days: a date-time "
                           "counts as the day it falls on in the district (UTC+7)."),
        "day": _param("day", {"type": "string", "format": "date"},
                      "Vendor parameter (YYYY-MM-DD): the features active that day. Sidewalk permits, findings "
                      "and wards: their start date on or before it and their end date on or after it (or none); "
                      f"construction dossiers: their works period, {domain.WORKS_MONTHS} months from the permit's "
                      "issue (or the dossier's receipt when not issued), as the overlap analysis counts it."),
        "as_of": _param("as_of", {"type": "string", "format": "date"},
                        "Vendor parameter: the data as of the end of this day (YYYY-MM-DD, from 1990-01-01 to a "
                        "year after today; else a 400). Dossiers received later are left out and each has the "
                        "status it had that day (from the status history; a feature without history by then "
                        "keeps its current status and is counted in numberWithoutHistory); completion and issue "
                        "dates after the day are empty. Sidewalk permits, findings and wards are those in force "
                        "that day, unless datetime asks for a range."),
        "limit": _param("limit", {"type": "integer", "minimum": 1, "maximum": max_items,
                                  "default": DEFAULT_LIMIT},
                        f"Features per page (default {DEFAULT_LIMIT}). Values above {max_items} are clamped to "
                        f"{max_items} as OGC API – Features recommends; 0, negative or non-integer values are a 400.",
                        explode=False),
        "offset": _param("offset", {"type": "integer", "minimum": 0, "default": 0},
                         "Features to skip (the next/prev links use it)."),
        "q": _param("q", {"type": "string", "maxLength": 200},
                    "Free-text search in codes, addresses and streets, accent-insensitive."),
        "featureId": _param("featureId", {"type": "string"}, "The feature's key.", required=True, where="path"),
    }
    for name, attr in PROPERTY_PARAMS.items():
        field = next(lay.field(name) for lay in LAYERS.values() if name in lay.field_names)
        if attr in EXACT_FIELDS:
            params[name] = _param(name, {"type": "array", "items": {"type": "string"}, "maxItems": EXACT_MAX},
                                  f"{field.en} ({field.vi}): one or more values, comma-separated, each matched "
                                  "exactly (not a search); a value no feature has matches nothing.", explode=False)
            continue
        items = {"type": "string", "pattern": "^[0-9]+$"} if name == "ward_code" or not field.codes else \
            {"type": "string", "enum": list(domain.CODE_SETS[field.codes])}
        params[name] = _param(name, {"type": "array", "items": items},
                              f"{field.en} ({field.vi}): one or more codes, comma-separated; an unknown code "
                              "is a 400.", explode=False)
    return params


def _content(*types: str, schema: dict | None = None) -> dict:
    body = {}
    for t in types:
        body[t] = {"schema": {"type": "string"}} if t == HTML else {"schema": schema or {"type": "object"}}
    return body


def _responses(*types: str, schema: dict | None = None, not_found: bool = False) -> dict:
    err = {"$ref": "#/components/schemas/exception"}
    out = {
        "200": {"description": "Success", "content": _content(*types, schema=schema)},
        "400": {"description": "A parameter is unknown or has an invalid value",
                "content": {JSON: {"schema": err}, HTML: {"schema": {"type": "string"}}}},
        "500": {"description": "Server error",
                "content": {JSON: {"schema": err}, HTML: {"schema": {"type": "string"}}}},
        "503": {"description": "The store cannot be read",
                "content": {JSON: {"schema": err}, HTML: {"schema": {"type": "string"}}}},
    }
    if not_found:
        out["404"] = {"description": "No such feature",
                      "content": {JSON: {"schema": err}, HTML: {"schema": {"type": "string"}}}}
    return out


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/parameters/{name}"}


def openapi(base: str, max_items: int) -> dict:
    """The OpenAPI 3.0 definition of this API: every path, parameter and response it serves."""
    common = [_ref("f"), _ref("lang")]
    paths: dict = {
        "/": {"get": {"summary": "Landing page", "operationId": "getLandingPage", "tags": ["Capabilities"],
                      "parameters": common, "responses": _responses(JSON, HTML)}},
        "/conformance": {"get": {"summary": "Conformance classes", "operationId": "getConformance",
                                 "tags": ["Capabilities"], "parameters": common,
                                 "responses": _responses(JSON, HTML)}},
        "/openapi": {"get": {"summary": "This API definition", "operationId": "getOpenAPI",
                             "tags": ["Capabilities"], "parameters": common,
                             "responses": _responses(OPENAPI, HTML)}},
        "/collections": {"get": {"summary": "The collections", "operationId": "getCollections",
                                 "tags": ["Capabilities"], "parameters": common,
                                 "responses": _responses(JSON, HTML)}},
    }
    fc = {"$ref": "#/components/schemas/featureCollectionGeoJSON"}
    feature = {"$ref": "#/components/schemas/featureGeoJSON"}
    for name, lay in LAYERS.items():
        tag = [lay.en]
        paths[f"/collections/{name}"] = {"get": {
            "summary": f"The collection {lay.en}", "operationId": f"describe_{name}", "tags": tag,
            "parameters": common, "responses": _responses(JSON, HTML)}}
        items_params = [*common, _ref("bbox"), _ref("datetime"), _ref("day"), _ref("as_of"), _ref("limit"),
                        _ref("offset"), _ref("q"),
                        *[_ref(p) for p in property_params(lay)]]
        paths[f"/collections/{name}/items"] = {"get": {
            "summary": f"Features of {lay.en}", "operationId": f"getFeatures_{name}", "tags": tag,
            "parameters": items_params, "responses": _responses(GEOJSON, HTML, schema=fc)}}
        paths[f"/collections/{name}/items/{{featureId}}"] = {"get": {
            "summary": f"One feature of {lay.en}", "operationId": f"getFeature_{name}", "tags": tag,
            "parameters": [_ref("featureId"), *common],
            "responses": _responses(GEOJSON, HTML, schema=feature, not_found=True)}}
        paths[f"/collections/{name}/queryables"] = {"get": {
            "summary": f"Queryable properties of {lay.en}", "operationId": f"getQueryables_{name}", "tags": tag,
            "parameters": common, "responses": _responses(SCHEMA_JSON, HTML)}}
    paths["/changes"] = changes.openapi_path()
    return {
        "openapi": "3.0.3",
        "info": {"title": TITLE, "version": "1.0.0", "description": DESCRIPTION,
                 "license": {"name": "MIT"}},
        "servers": [{"url": base}],
        "tags": [{"name": "Capabilities"}, *[{"name": lay.en} for lay in LAYERS.values()], {"name": "Processes"},
                 {"name": "Changes"}],
        "paths": {**paths, **processes.openapi_paths()},
        "components": {
            "parameters": _parameters(max_items),
            "schemas": {
                "exception": {"type": "object", "required": ["code", "description", "status"],
                              "properties": {"code": {"type": "string"}, "description": {"type": "string"},
                                             "status": {"type": "integer"}}},
                "featureCollectionGeoJSON": {
                    "type": "object", "required": ["type", "features"],
                    "properties": {"type": {"type": "string", "enum": ["FeatureCollection"]},
                                   "features": {"type": "array", "items": feature},
                                   "numberMatched": {"type": "integer", "minimum": 0},
                                   "numberReturned": {"type": "integer", "minimum": 0},
                                   "timeStamp": {"type": "string", "format": "date-time"},
                                   "links": {"type": "array", "items": {"type": "object"}}}},
                "featureGeoJSON": {
                    "type": "object", "required": ["type", "geometry", "properties"],
                    "properties": {"type": {"type": "string", "enum": ["Feature"]},
                                   "id": {"type": "string"},
                                   "geometry": {"nullable": True, "type": "object"},
                                   "properties": {"nullable": True, "type": "object"},
                                   "links": {"type": "array", "items": {"type": "object"}}}},
            },
        },
    }
