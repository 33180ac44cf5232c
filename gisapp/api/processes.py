"""OGC API – Processes, Part 1 (Core 1.0, synchronous execution, JSON): the documents, without Flask.

One process, ``occupancy-check``: the check of a proposed sidewalk
occupancy (:mod:`gisapp.analysis.check` does the checking; this module
only describes the process and reads and answers the execute request, so
the API room needs no analysis).  ``gisapp/web/views/api.py`` is a thin
layer over it:

- ``GET /api/processes`` — the process list (``processes`` and ``links``);
- ``GET /api/processes/occupancy-check`` — the process description (OGC
  process description: ``inputs`` and ``outputs`` with JSON Schemas);
- ``POST /api/processes/occupancy-check/execution`` — execute, synchronously.

Where the issue and the standard differ we follow the standard:

- The execute body is an ``execute`` document: ``inputs`` (required here),
  optionally ``outputs`` (only ``report``) and ``response`` (``raw``, the
  default, or ``document``).  ``raw`` answers the one output's value itself
  (the check's report, as the issue asks); ``document`` answers the
  ``results`` object ``{"report": …}`` (/req/core/process-execute-sync-document).
- An input may be given as its value or as a qualified value
  ``{"value": …, "mediaType": …}`` (``geometry`` as ``application/geo+json``).
- The process offers ``sync-execute`` only: there are no jobs, so
  ``GET /api/jobs/<id>`` is a 404 (``NoSuchJob``); a ``Prefer: respond-async``
  header is ignored (the standard lets a server execute synchronously then).
- Errors keep the API's one shape ``{"code", "description", "status"}``
  (the standard's RFC 7807 members ``type``/``title``/``detail`` are not
  used); codes ``NoSuchProcess``, ``NoSuchJob``, ``InvalidParameterValue``
  (a bad input, described ``"<input>: <problem>"``), ``PayloadTooLarge``.
"""

from __future__ import annotations

import orjson

from gisapp import domain
from gisapp.errors import FilterError, RequestError

#: The conformance classes of Part 1 this API implements.
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/oas30",
]
REL_PROCESSES = "http://www.opengis.net/def/rel/ogc/1.0/processes"
REL_EXECUTE = "http://www.opengis.net/def/rel/ogc/1.0/execute"
JSON = "application/json"
GEOJSON = "application/geo+json"
PROCESS_ID = "occupancy-check"
VERSION = "1.0.0"
OUTPUT_ID = "report"
#: The largest execute body read, in bytes (1 MB).
MAX_BODY = 1024 * 1024
#: The members an execute document may have (``subscriber`` is for asynchronous jobs: not offered).
EXECUTE_MEMBERS = ("inputs", "outputs", "response")
RESPONSES = ("raw", "document")
TITLE = "Kiểm tra sử dụng tạm thời vỉa hè / Sidewalk occupancy check"
DESCRIPTION = ("Checks a proposed temporary sidewalk occupancy before it is granted: clashes with other "
               "sidewalk-use permits in space and time, the narrowest free passage left to pedestrians "
               "(at least 1.5 m), the construction dossier it serves (the merged procedure), the fee and "
               "the decision's due date. Writes nothing. Personal fields only to signed-in staff.")


def _link(href: str, rel: str, type_: str = JSON, title: str | None = None) -> dict:
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


def check_process(process_id: str) -> None:
    """404 ``NoSuchProcess`` for any process but ``occupancy-check``."""
    if process_id != PROCESS_ID:
        raise RequestError(404, "NoSuchProcess", f"no process {process_id!r}; processes: {PROCESS_ID}")


def summary(base: str) -> dict:
    """The process summary (its entry in the process list)."""
    path = f"{base}/processes/{PROCESS_ID}"
    return {
        "id": PROCESS_ID,
        "title": TITLE,
        "description": DESCRIPTION,
        "version": VERSION,
        "keywords": ["sidewalk", "vỉa hè", "permit", "merged procedure"],
        "jobControlOptions": ["sync-execute"],
        "outputTransmission": ["value"],
        "links": [
            _link(path, "self", JSON, "The process description"),
            _link(f"{path}/execution", REL_EXECUTE, JSON, "Execute the process (POST)"),
        ],
    }


def process_list(base: str) -> dict:
    """``GET /processes``: every process and a link to the list itself."""
    return {"processes": [summary(base)], "links": [_link(f"{base}/processes", "self", JSON, "This list")]}


def input_schemas(purposes: list[str] | None = None) -> dict:
    """The inputs of ``occupancy-check`` with their JSON Schemas (OGC process description)."""
    codes = purposes or list(domain.SIDEWALK_PURPOSES)
    return {
        "geometry": {
            "title": "Vùng chiếm dụng / Occupied area",
            "description": "The proposed occupancy: a GeoJSON Polygon or MultiPolygon in WGS84 longitude/latitude "
                           "(RFC 7946), inside Vietnam, at most GISAPP_CHECK_MAX_AREA_M2 (500 m²). A self-"
                           "intersecting polygon is repaired when that changes its area by under 1 %, else refused.",
            "minOccurs": 1, "maxOccurs": 1,
            "schema": {"oneOf": [
                {"$ref": "https://geojson.org/schema/Polygon.json"},
                {"$ref": "https://geojson.org/schema/MultiPolygon.json"},
            ], "contentMediaType": GEOJSON},
        },
        "start": {"title": "Từ ngày / Start", "description": "First day of the occupancy (YYYY-MM-DD).",
                  "minOccurs": 1, "maxOccurs": 1, "schema": {"type": "string", "format": "date"}},
        "end": {"title": "Đến ngày / End", "description": "Last day of the occupancy (YYYY-MM-DD), not before "
                "start; the period at most GISAPP_CHECK_MAX_DAYS (365) days.",
                "minOccurs": 1, "maxOccurs": 1, "schema": {"type": "string", "format": "date"}},
        "purpose": {"title": "Mục đích / Purpose", "description": "Purpose code of the sidewalk use: " +
                    ", ".join(f"{c} ({domain.SIDEWALK_PURPOSES[c].vi} / {domain.SIDEWALK_PURPOSES[c].en})"
                              for c in codes),
                    "minOccurs": 1, "maxOccurs": 1, "schema": {"type": "string", "enum": codes}},
        "construction_dossier_code": {
            "title": "Mã hồ sơ xây dựng / Construction dossier",
            "description": "The construction-permit dossier the occupancy serves (the merged procedure); when "
                           "left out, the dossier whose parcel fronts the occupancy and whose works period "
                           "overlaps it is looked for.",
            "minOccurs": 0, "maxOccurs": 1, "schema": {"type": "string", "minLength": 1, "maxLength": 100}},
    }


def report_schema(openapi: bool = False) -> dict:
    """The JSON Schema of the ``report`` output (``openapi``: OpenAPI 3.0's dialect, ``nullable``)."""
    reason = {"type": "object", "required": ["code", "vi", "en"],
              "properties": {"code": {"type": "string"}, "vi": {"type": "string"}, "en": {"type": "string"}}}
    clash = {"type": "object", "required": ["permit_no", "overlap_area_m2", "overlap_days"],
             "properties": {"permit_no": {"type": "string"}, "overlap_area_m2": {"type": "number"},
                            "overlap_days": {"type": "integer"}, "overlap_start": {"type": "string", "format": "date"},
                            "overlap_end": {"type": "string", "format": "date"}}}
    def nullable(kind: str, **more) -> dict:
        return {"type": kind, "nullable": True, **more} if openapi else {"type": [kind, "null"], **more}

    nullable_number = nullable("number")
    return {
        "type": "object",
        "contentMediaType": JSON,
        "required": ["verdict", "reasons", "clashes"],
        "properties": {
            "verdict": {"type": "string", "enum": ["OK", "REFER", "REFUSE"],
                        "description": "OK; REFER: an officer must look; REFUSE"},
            "reasons": {"type": "array", "items": reason},
            "ward_code": nullable("string"),
            "sidewalk_ids": {"type": "array", "items": {"type": "string"}},
            "area_m2": {"type": "number"},
            "narrowest_passage_m": nullable_number,
            "narrowest_on": nullable("string", format="date"),
            "clashes": {"type": "array", "items": clash},
            "opportunities": {"type": "array", "items": {"type": "object"}},
            "construction_dossier_code": nullable("string"),
            "due_on": nullable("string", format="date"),
            "fee_vnd": nullable_number,
            "fee_note": nullable("object"),
        },
    }


def description(base: str) -> dict:
    """``GET /processes/occupancy-check``: the process summary with its inputs and outputs."""
    return {
        **summary(base),
        "inputs": input_schemas(),
        "outputs": {OUTPUT_ID: {"title": "Kết quả kiểm tra / Check report",
                                "description": "The verdict and what it rests on.", "schema": report_schema()}},
    }


def read_execute(body: bytes, *, content_type: str | None = None) -> tuple[dict, str]:
    """The inputs and the response mode (``raw`` or ``document``) of an execute request body.

    400 (naming the member) for a body that is not a JSON object, lacks
    ``inputs``, has a member the standard does not define for synchronous
    execution, asks for an unknown output or response mode; 413 for a body
    over :data:`MAX_BODY` (the caller reads at most one byte more).
    """
    if len(body) > MAX_BODY:
        raise RequestError(413, "PayloadTooLarge", f"body: larger than {MAX_BODY // 1024} KB "
                           f"(1 MB); an occupancy needs a few KB")
    media = (content_type or "").split(";")[0].strip().lower()
    if media and "json" not in media and media != "text/plain":
        raise FilterError("body", f"media type {media!r} is not JSON; send application/json")
    if not body.strip():
        raise FilterError("body", 'empty; send {"inputs": {...}} as JSON')
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise FilterError("body", f"not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise FilterError("body", 'must be a JSON object {"inputs": {...}}')
    unknown = [k for k in doc if k not in EXECUTE_MEMBERS]
    if unknown:
        raise FilterError(str(unknown[0]), f"not a member of an execute request; members: {', '.join(EXECUTE_MEMBERS)}")
    if "inputs" not in doc or doc["inputs"] is None:
        raise FilterError("inputs", "required (an object with geometry, start, end, purpose)")
    inputs = doc["inputs"]
    if not isinstance(inputs, dict):
        raise FilterError("inputs", "must be a JSON object")
    mode = doc.get("response", "raw")
    if mode not in RESPONSES:
        raise FilterError("response", f"{mode!r} is not offered; use raw or document")
    outputs = doc.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, dict):
            raise FilterError("outputs", "must be a JSON object")
        for name in outputs:
            if name != OUTPUT_ID:
                raise FilterError("outputs", f"no output {name!r}; outputs: {OUTPUT_ID}")
    return {name: unqualified(value) for name, value in inputs.items()}, mode


def unqualified(value):
    """An input's value: a qualified value ``{"value": v, "mediaType": …}`` becomes ``v``."""
    if isinstance(value, dict) and "value" in value and "type" not in value:
        return value["value"]
    return value


def results(report: dict, mode: str) -> dict:
    """The execute response: the report itself (``raw``) or the results document ``{"report": …}``."""
    return report if mode == "raw" else {OUTPUT_ID: report}


def openapi_paths() -> dict:
    """The processes' paths for the API's OpenAPI document (``#/components/schemas/exception`` for errors)."""
    err = {"description": "Refused", "content": {JSON: {"schema": {"$ref": "#/components/schemas/exception"}}}}
    properties = {k: v["schema"] for k, v in input_schemas().items()}
    # the document is read offline: the geometry's schema inline, not GeoJSON's published one
    properties["geometry"] = {"type": "object", "required": ["type", "coordinates"],
                              "properties": {"type": {"type": "string", "enum": ["Polygon", "MultiPolygon"]},
                                             "coordinates": {"type": "array", "items": {"type": "array"}}}}
    inputs_schema = {"type": "object", "required": ["geometry", "start", "end", "purpose"],
                     "properties": properties, "additionalProperties": False}
    execute = {"type": "object", "required": ["inputs"],
               "properties": {"inputs": inputs_schema,
                              "outputs": {"type": "object", "properties": {OUTPUT_ID: {"type": "object"}},
                                          "additionalProperties": False},
                              "response": {"type": "string", "enum": list(RESPONSES), "default": "raw"}}}
    tag = ["Processes"]
    return {
        "/processes": {"get": {
            "summary": "The processes", "operationId": "getProcesses", "tags": tag,
            "responses": {"200": {"description": "The process list", "content": {JSON: {"schema": {
                "type": "object", "required": ["processes", "links"]}}}}, "400": err, "500": err}}},
        f"/processes/{PROCESS_ID}": {"get": {
            "summary": "Description of the sidewalk occupancy check", "operationId": "describeOccupancyCheck",
            "tags": tag,
            "responses": {"200": {"description": "The process description", "content": {JSON: {"schema": {
                "type": "object"}}}}, "400": err, "404": err}}},
        f"/processes/{PROCESS_ID}/execution": {"post": {
            "summary": "Check a proposed sidewalk occupancy (synchronous; writes nothing)",
            "operationId": "executeOccupancyCheck", "tags": tag,
            "requestBody": {"required": True, "content": {JSON: {"schema": execute}}},
            "responses": {
                "200": {"description": "The report (response raw, the default) or the results document "
                                       "{\"report\": …} (response document)",
                        "content": {JSON: {"schema": report_schema(openapi=True)}}},
                "400": {**err, "description": "A bad input or a malformed request, named in the description"},
                "404": {**err, "description": "No such process"},
                "413": {**err, "description": "The body is over 1 MB"},
                "503": {**err, "description": "The store cannot be read"}}}},
        **{path: {"get": {
            "summary": f"A job's {what} (the process runs synchronously only: there are no jobs)",
            "operationId": op, "tags": tag,
            "parameters": [{"name": "jobId", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"400": {**err, "description": "A malformed job id"},
                          "404": {**err, "description": "No such job"}}}}
           for path, what, op in (("/jobs/{jobId}", "status", "getJob"),
                                  ("/jobs/{jobId}/results", "results", "getJobResults"))},
    }
