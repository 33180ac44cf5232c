"""``/api``: OGC API – Features over the store — thin views over :mod:`gisapp.api.features`."""

from __future__ import annotations

import threading

import orjson
from flask import Blueprint, Response, current_app, render_template, request

from gisapp import privacy
from gisapp.api import changes as change_feed
from gisapp.api import features as ogcapi
from gisapp.api import processes
from gisapp.errors import RequestError
from gisapp.filters import parse_filter, refuse_unknown
from gisapp.formats.geojson import property_columns
from gisapp.schema import LAYERS
from gisapp.store import Store
from gisapp.web import auth, occupancy
from gisapp.web.request import get_lang, get_store, known_wards, public_root, read_body

bp = Blueprint("api", __name__, url_prefix="/api")


def _base() -> str:
    return public_root() + "/api"


def _prefers_html() -> bool:
    return request.accept_mimetypes.best_match([ogcapi.JSON, ogcapi.GEOJSON, ogcapi.HTML]) == ogcapi.HTML


def _fmt(allowed: tuple[str, ...] | None = ogcapi.COMMON_PARAMS) -> str:
    """The output format, after refusing parameters not in ``allowed`` (``None``: checked) and a bad ``lang``."""
    if allowed is not None:
        refuse_unknown(request.args, allowed)
    ogcapi.check_lang(request.args)
    return ogcapi.output_format(request.args, _prefers_html())


def _json(doc, media_type: str = ogcapi.JSON) -> Response:
    return Response(orjson.dumps(doc), mimetype=media_type)


def _html(template: str, **context) -> Response:
    return Response(render_template(template, lang=_lang(), **context), mimetype="text/html")


def _lang() -> str:
    return get_lang()


def _slots(store: Store) -> threading.BoundedSemaphore:
    """How many feature pages one process builds at once: the store's ``page_slots`` (app setting
    ``API_CONCURRENCY`` when set).

    Building a page from a GeoPackage is CPU work under the GIL: a second
    one in the same process only interleaves with the first and both finish
    later (measured with 8 clients on 2 cores: ~12 % fewer pages per second,
    worse p95).  On PostGIS a page mostly waits for its query in the
    database's process, which a second page's work fills (two slots: ~30 %
    more pages per second, lower p95).  The other requests wait here,
    without competing; ``gisapp serve --workers N`` runs N processes to use
    N cores.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # the proxy's app, kept per process
    slots = app.extensions.get("gisapp.api_slots")
    if slots is None:
        size = int(app.config.get("API_CONCURRENCY") or store.page_slots)
        slots = app.extensions.setdefault("gisapp.api_slots", threading.BoundedSemaphore(size))
    return slots


@bp.get("")
@bp.get("/")
def landing():
    """The landing page."""
    fmt = _fmt()
    doc = ogcapi.landing(_base(), fmt)
    return _html("api_landing.html", doc=doc, title=doc["title"]) if fmt == "html" else _json(doc)


@bp.get("/conformance")
def conformance():
    """The conformance classes."""
    fmt = _fmt()
    doc = ogcapi.conformance(_base(), fmt)
    return _html("api_conformance.html", doc=doc, title="Conformance") if fmt == "html" else _json(doc)


@bp.get("/openapi")
def openapi():
    """The OpenAPI 3.0 definition."""
    fmt = _fmt()
    doc = ogcapi.openapi(_base(), current_app.config["MAX_ITEMS"])
    if fmt == "html":
        return _html("api_openapi.html", doc=doc, title="OpenAPI")
    return _json(doc, ogcapi.OPENAPI)


@bp.get("/collections")
def collections():
    """Every collection."""
    fmt = _fmt()
    doc = ogcapi.collections(get_store(), _base(), fmt)
    return _html("api_collections.html", doc=doc, title="Collections") if fmt == "html" else _json(doc)


@bp.get("/collections/<collection_id>")
def collection(collection_id: str):
    """One collection."""
    ogcapi.collection_layer(collection_id)
    fmt = _fmt()
    doc = ogcapi.collection(get_store(), collection_id, _base())
    return _html("api_collection.html", doc=doc, title=doc["title"]) if fmt == "html" else _json(doc)


@bp.get("/collections/<collection_id>/queryables")
def queryables(collection_id: str):
    """The collection's queryable properties (JSON Schema)."""
    ogcapi.collection_layer(collection_id)
    fmt = _fmt()
    doc = ogcapi.queryables(collection_id, _base())
    if fmt == "html":
        return _html("api_queryables.html", doc=doc, title=doc["title"])
    return _json(doc, ogcapi.SCHEMA_JSON)


@bp.get("/changes")
def changes():
    """The change feed: the store's writes after the ``after`` cursor, with the cursor of the next call."""
    refuse_unknown(request.args, change_feed.PARAMS)
    return _json(change_feed.changes_page(get_store(), request.args, _base()))


@bp.get("/collections/<collection_id>/items")
def items(collection_id: str):
    """A page of features: GeoJSON, or an HTML table."""
    lay = ogcapi.collection_layer(collection_id)
    personal = auth.show_personal()
    flt, _ = parse_filter(request.args, "api", layer=lay, known_wards=known_wards(), personal=personal)
    fmt = _fmt(None)  # the parser refused parameters the items do not take
    store = get_store()
    fields = privacy.visible_fields(lay, personal)
    with _slots(store):
        page = ogcapi.ItemsPage(store, lay, flt, request.args, _base(), max_items=current_app.config["MAX_ITEMS"],
                                fields=fields)
        if fmt == "json":  # a page is at most MAX_ITEMS features: built whole, inside the slot
            return Response(page.geojson(), mimetype=ogcapi.GEOJSON)
    return _html("api_items.html", page=page, layer=lay, fields=fields, ids=page.ids(), rows=page.properties(),
                 links=page.links("html"), title=lay.vi)


@bp.get("/collections/<collection_id>/items/<path:feature_id>")
def item(collection_id: str, feature_id: str):
    """One feature."""
    lay = ogcapi.collection_layer(collection_id)
    fmt = _fmt()
    store = get_store()
    fields = privacy.visible_fields(lay, auth.show_personal())
    if fmt == "html":
        frame = ogcapi.item_frame(store, lay, feature_id)
        row = property_columns(frame, fields)
        return _html("api_item.html", layer=lay, feature_id=feature_id, title=feature_id,
                     props={f: row[f][0] for f in fields})
    return Response(ogcapi.item_json(store, collection_id, feature_id, _base(), fields), mimetype=ogcapi.GEOJSON)


#: Collection ids, for templates.
COLLECTIONS = tuple(LAYERS)


# -- OGC API – Processes (Part 1 Core, synchronous execution) -------------------------------------------------

def _json_only() -> None:
    """Refuse parameters other than ``f`` and ``lang``, and any ``f`` but ``json`` (the processes are JSON only)."""
    refuse_unknown(request.args, ogcapi.COMMON_PARAMS)
    ogcapi.check_lang(request.args)
    ogcapi.output_format(request.args, False, offered=("json",))


@bp.get("/processes")
def process_list():
    """The process list."""
    _json_only()
    return _json(processes.process_list(_base()))


@bp.get("/processes/<process_id>")
def process(process_id: str):
    """A process description: its inputs and outputs."""
    processes.check_process(process_id)
    _json_only()
    return _json(processes.description(_base()))


@bp.post("/processes/<process_id>/execution")
def execute(process_id: str):
    """Execute a process synchronously: the check's report (``raw``) or its results document.

    Anonymous clients may run it (no personal fields in the answer); it
    writes nothing, so it takes no CSRF token (exempt in ``views.register``).
    """
    processes.check_process(process_id)
    _json_only()
    inputs, mode = processes.read_execute(read_body(processes.MAX_BODY), content_type=request.content_type)
    store = get_store()
    with _slots(store):
        report = occupancy.check(store, inputs, current_app.config, personal=auth.show_personal())
    return _json(processes.results(report, mode))


@bp.get("/jobs/<job_id>")
@bp.get("/jobs/<job_id>/results")
def job(job_id: str):
    """No jobs: every execution is synchronous."""
    raise RequestError(404, "NoSuchJob", f"no job {job_id!r}: processes here run synchronously only "
                       "(jobControlOptions sync-execute); their result is the execute response")
