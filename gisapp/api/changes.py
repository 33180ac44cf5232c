"""``GET /api/changes``: the store's change log as a feed other systems poll, without Flask.

A consumer asks for the entries after its cursor (none: from the start) and
gets them in order with the cursor to ask with next time (``cursor``, and a
``next`` link carrying it), whether or not anything came: polling the
``next`` link forever misses nothing and sees nothing twice, across server
restarts and on both stores, because the log lives in the store and its
order is the order the writes committed in (:meth:`gisapp.store.Store.changes`).

The cursor is opaque text (URL-safe base64) naming the log it comes from
and the last entry seen.  A malformed cursor, one from another store (or
from a store created again under the same name), or one ahead of the log (a
store restored from a backup) is a 400 naming ``after``: start again
without it.  ``replace`` entries mean a layer was loaded whole (a seed, a
city-scale reload): reload that layer from its collection's items.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import urlencode

from gisapp.errors import FilterError
from gisapp.store import Store
from gisapp.store.base import CHANGE_KINDS

#: Entries per page unless ``limit`` says otherwise, and the most a page holds (larger limits are clamped).
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
PARAMS = ("after", "limit")
_PREFIX = "gisapp-changes:1:"
_LOG_ID = re.compile(r"^[0-9a-f]{1,64}$")


def encode_cursor(log_id: str | None, seq: int) -> str:
    """The opaque cursor after entry ``seq`` of the log ``log_id`` (``None``: a store without a log yet)."""
    text = f"{_PREFIX}{log_id or ''}:{int(seq)}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str | None, int]:
    """``(log_id, seq)`` of a cursor, or :class:`FilterError` (400) when it is not one."""
    bad = FilterError("after", "not a cursor of this feed; use the 'cursor' of a previous answer, or no "
                               "'after' to start from the beginning")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        raise bad from None
    if not text.startswith(_PREFIX):
        raise bad
    log_id, _, seq = text[len(_PREFIX):].partition(":")
    if not seq.isdigit() or (log_id and not _LOG_ID.match(log_id)) or (not log_id and int(seq) != 0):
        raise bad
    return log_id or None, int(seq)


def parse_limit(text: str | None) -> int:
    """``limit``: default 100, at most :data:`MAX_LIMIT` (clamped), 0 or not an integer → 400."""
    if text is None or text == "":
        return DEFAULT_LIMIT
    if not re.fullmatch(r"\+?\d+", text.strip()) or int(text) < 1:
        raise FilterError("limit", f"{text!r} is not a positive integer")
    return min(int(text), MAX_LIMIT)


def changes_page(store: Store, args, base: str) -> dict:
    """The answer to ``GET /api/changes?after=&limit=``: entries, the next cursor and the ``next`` link.

    ``args``: the request's query (a mapping); ``base``: the API's URL (``…/api``).
    """
    after_text, limit = args.get("after") or None, parse_limit(args.get("limit"))
    page = store.changes(0, 0)  # the log's id and last seq first: a cursor is checked before it is used
    after = 0
    if after_text is not None:
        log_id, after = decode_cursor(after_text)
        if log_id is not None and log_id != page.log_id:
            raise FilterError("after", "this cursor is from another store's change log (or from before the "
                                       "store was created again); start again without 'after'")
        if after > page.last:
            raise FilterError("after", "this cursor is ahead of the store's change log (was the store restored "
                                       "from a backup?); start again without 'after'")
    page = store.changes(after, limit)
    entries = [{"seq": c.seq, "layer": c.layer, "key": c.key, "kind": c.kind, "status": c.status, "time": c.time}
               for c in page.changes]
    seq = page.changes[-1].seq if page.changes else after
    cursor = encode_cursor(page.log_id, seq)
    query = {"after": cursor, **({"limit": str(limit)} if args.get("limit") else {})}
    here = {k: v for k, v in (("after", after_text), ("limit", args.get("limit"))) if v}
    return {
        "changes": entries,
        "cursor": cursor,
        "more": seq < page.last,
        "links": [
            {"rel": "self", "type": "application/json", "href": _url(base, here)},
            {"rel": "next", "type": "application/json", "href": _url(base, query),
             "title": "The entries after these (poll it: empty until the next write)"},
        ],
    }


def _url(base: str, params: dict) -> str:
    query = urlencode(params)
    return f"{base}/changes" + (f"?{query}" if query else "")


def openapi_path() -> dict:
    """The OpenAPI 3.0 description of ``/changes`` (for :func:`gisapp.api.features.openapi`)."""
    entry = {"type": "object", "required": ["seq", "layer", "key", "kind", "status", "time"], "properties": {
        "seq": {"type": "integer", "minimum": 1, "description": "Position in the log (ascending, may skip)."},
        "layer": {"type": "string", "description": "The collection the feature belongs to."},
        "key": {"type": "string", "nullable": True,
                "description": "The feature's key (its id in the collection's items); null for 'replace'."},
        "kind": {"type": "string", "enum": list(CHANGE_KINDS),
                 "description": "insert, update, delete: one feature; replace: the layer was loaded whole "
                                "(too large to log feature by feature), reload it from its items."},
        "status": {"type": "string", "nullable": True,
                   "description": "The feature's status after the change (layers with a status; null else)."},
        "time": {"type": "string", "format": "date-time", "description": "When the write happened (UTC)."},
    }}
    error = {"$ref": "#/components/schemas/exception"}
    return {"get": {
        "summary": "Change feed: every write to the store, in order",
        "description": (
            "Poll with the 'next' link (or after=<cursor>) to get every insert, update and delete of a feature, "
            "and every layer replaced whole, exactly once and in the order the writes committed, across server "
            "restarts. The cursor is opaque; one that is malformed, from another store, or ahead of the log is "
            "a 400. An empty 'changes' means nothing new yet: poll again with the same 'next' link."),
        "operationId": "getChanges", "tags": ["Changes"],
        "parameters": [
            {"name": "after", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "The 'cursor' of a previous answer; without it the feed starts at the beginning."},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
             "description": f"Entries per answer (default {DEFAULT_LIMIT}; larger than {MAX_LIMIT} is clamped)."},
        ],
        "responses": {
            "200": {"description": "The entries after the cursor", "content": {"application/json": {"schema": {
                "type": "object", "required": ["changes", "cursor", "more", "links"], "properties": {
                    "changes": {"type": "array", "items": entry},
                    "cursor": {"type": "string", "description": "Where the next call starts (after=)."},
                    "more": {"type": "boolean", "description": "Whether more entries are already waiting."},
                    "links": {"type": "array", "items": {"type": "object"}}}}}}},
            "400": {"description": "A bad cursor or limit, or another parameter",
                    "content": {"application/json": {"schema": error}}},
            "503": {"description": "The store cannot be read", "content": {"application/json": {"schema": error}}},
        },
    }}
