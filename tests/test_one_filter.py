"""One filter parser for every surface: the map's data, the OGC API, the exports and the tiles.

Each surface names the filter's parameters its own way (the map's ``ward`` is the API's ``ward_code``,
its ``from``/``to`` the API's ``datetime``); the table ``gisapp.filters.SURFACES`` maps them to the one
:class:`gisapp.filters.Filter`.  The same bad value is the same error everywhere (400,
``InvalidParameterValue``, the parameter named, the same words), and the same good filter selects the
same features on every surface, on both stores.
"""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from werkzeug.datastructures import MultiDict

from gisapp.errors import FilterError, RequestError
from gisapp.filters import SURFACES, Filter, parse_filter
from gisapp.tiles import mvt as tiles
from gisapp.web.app import create_app
from tests.helpers import decode
from tests.stores import BACKENDS, new_store

STRICT = ("map", "api", "export", "tiles")
#: A box inside the z14 tile below (Hòa Xuân, Hòa Thọ Đông): every feature it selects is in that tile.
BOX = "108.195,15.99,108.214,16.002"
TILE = (14, 13116, 7454)


def name_of(surface: str, field: str) -> str:
    """The surface's parameter for a Filter field (``date_from`` on the API: ``datetime``)."""
    return next(p for p, f in SURFACES[surface].params.items() if field in f.split("/"))


def args_for(surface: str, values: dict) -> MultiDict:
    """``values`` (Filter field → text) as the surface's parameters; a date range as ``datetime`` on the API."""
    out = MultiDict()
    dates = (values.get("date_from"), values.get("date_to"))
    for field, text in values.items():
        if field in ("date_from", "date_to") and SURFACES[surface].params.get("datetime"):
            continue
        out.add(name_of(surface, field), text)
    if any(dates) and "datetime" in SURFACES[surface].params:
        out.add("datetime", "/".join(d or ".." for d in dates))
    return out


GOOD = {"wards": "20314", "statuses": "returned,PROCESSING", "date_from": "2022-02-01", "date_to": "2022-05-31",
        "bbox": BOX}

#: (Filter field, bad value, the words after "<parameter>: " on every surface; None: the surface's own syntax)
BAD = [
    ("wards", "99999", "unknown ward code '99999'"),
    ("wards", "abc", "unknown ward code 'abc'"),
    ("statuses", "DONE", "unknown status code 'DONE'; codes: "),
    ("procedures", "BUILD", "unknown procedure code 'BUILD'; codes: "),
    ("channels", "FAX", "unknown channel code 'FAX'; codes: "),
    ("q", "x" * 201, "search text is longer than 200 characters"),
    ("bbox", "a,b,c,d", "'a,b,c,d' has a value that is not a number"),
    ("bbox", "200,15,201,16", "longitudes must lie in -180..180 and latitudes in -90..90"),
    ("bbox", "1,2,3", None),  # four numbers on the map, four or six on the API
    ("date_from", "2022-13-01", None),  # an ISO date on the map, RFC 3339 on the API
    ("as_of", "2022-6-1", "'2022-6-1' is not a date (YYYY-MM-DD)"),  # one day, the same on every surface
    ("as_of", "1989-12-31", "'1989-12-31' is before 1990-01-01"),
    ("as_of", "2999-01-01", "'2999-01-01' is more than a year after today"),
]


def test_the_table_names_one_field_per_parameter():
    assert name_of("map", "wards") == "ward" and name_of("api", "wards") == "ward_code"
    assert name_of("map", "date_from") == "from" and name_of("api", "date_from") == "datetime"
    for surface in SURFACES.values():
        for field in surface.params.values():
            assert set(field.split("/")) <= set(Filter.__dataclass_fields__), field


@pytest.mark.parametrize("surface", ["page", *STRICT])
def test_one_good_filter_is_the_same_filter_on_every_surface(surface):
    flt, warnings = parse_filter(args_for(surface, GOOD), surface)
    assert warnings == []
    assert flt == Filter(wards=("20314",), statuses=("RETURNED", "PROCESSING"), date_from=dt.date(2022, 2, 1),
                         date_to=dt.date(2022, 5, 31), bbox=(108.195, 15.99, 108.214, 16.002))


@pytest.mark.parametrize("field, value, words", BAD)
def test_one_bad_value_is_the_same_error_on_every_surface(field, value, words):
    errors = {}
    for surface in STRICT:
        with pytest.raises(FilterError) as caught:
            parse_filter(args_for(surface, {field: value}), surface, known_wards={"20314", "20305"})
        err = caught.value
        assert isinstance(err, RequestError) and (err.status, err.code) == (400, "InvalidParameterValue")
        assert err.param == name_of(surface, field) and err.description == f"{err.param}: {err.message}"
        errors[surface] = err.message
    if words:
        assert set(errors.values()) == {errors["map"]} and errors["map"].startswith(words)
    flt, warnings = parse_filter(args_for("page", {field: value}), "page", known_wards={"20314", "20305"})
    assert warnings == [f"{name_of('page', field)}: {errors['map']}"]  # the page drops it, with the same words


# -- over HTTP, on both stores --------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=BACKENDS)
def client(request, demo_frames, tmp_path_factory):
    store = new_store(request.param, tmp_path_factory.mktemp("one-filter"), request)
    frames, meta = demo_frames
    store.write(frames, meta=meta)
    return create_app({"STORE": store.url, "TESTING": True, "BASEMAP": "none"}).test_client()


def urls(values: dict) -> dict[str, str]:
    """The map's data, the API's items, an export and a tile for the same filter."""
    def query(surface):
        return "&".join(f"{k}={v}" for k, v in args_for(surface, values).items(multi=True))

    z, x, y = TILE
    return {
        "map": f"/data/count?{query('map')}",
        "api": f"/api/collections/construction_permits/items?{query('api')}&limit=10000",
        "export": f"/export/construction_permits.geojson?{query('export')}",
        "tiles": f"/tiles/construction_permits/{z}/{x}/{y}.mvt?{query('tiles')}",
    }


def matched(surface: str, r) -> int:
    """How many features a surface's answer holds."""
    assert r.status_code in (200, 204), r.data[:300]
    if surface == "map":
        return r.get_json()["count"]
    if surface == "api":
        return orjson.loads(r.data)["numberMatched"]
    if surface == "export":
        return len(orjson.loads(r.data)["features"])
    return len(decode(r.data, "construction_permits"))


def test_one_good_filter_matches_the_same_features_everywhere(client):
    counts = {surface: matched(surface, client.get(url)) for surface, url in urls(GOOD).items()}
    assert len(set(counts.values())) == 1 and counts["map"] > 0, counts
    lon_lat = tiles.lonlat_bounds(*TILE)
    box = [float(v) for v in BOX.split(",")]
    assert lon_lat[0] < box[0] < box[2] < lon_lat[2] and lon_lat[1] < box[1] < box[3] < lon_lat[3]


@pytest.mark.parametrize("field, value, words", BAD)
def test_one_bad_value_is_the_same_400_on_every_surface(client, field, value, words):
    descriptions = {}
    for surface, url in urls({field: value}).items():
        r = client.get(url)
        assert r.status_code == 400 and r.mimetype == "application/json", (surface, r.data[:300])
        body = r.get_json()
        assert set(body) == {"code", "description", "status"}
        assert (body["status"], body["code"]) == (400, "InvalidParameterValue"), (surface, body)
        param = name_of(surface, field)
        assert body["description"].startswith(f"{param}: "), (surface, body)
        descriptions[surface] = body["description"].removeprefix(f"{param}: ")
    if words:
        assert set(descriptions.values()) == {descriptions["map"]} and descriptions["map"].startswith(words)


@pytest.mark.parametrize("surface", ["page", *STRICT])
def test_empty_values_are_no_filter_and_search_texts_are_joined_everywhere(surface):
    """Once the API refused an empty ``bbox``/``datetime`` and read only the first ``q``; the map did not."""
    args = MultiDict([(name_of(surface, "bbox"), ""), (name_of(surface, "date_from"), ""),
                      (name_of(surface, "wards"), ""), ("q", "Ông Ích"), ("q", "kiệt")])
    assert parse_filter(args, surface) == (Filter(q="Ông Ích kiệt"), [])


@pytest.mark.parametrize("surface, refused", [("page", False), ("map", False), ("export", True), ("tiles", True),
                                              ("api", True)])
def test_unknown_parameters_by_the_surfaces_rule(surface, refused):
    """The API, tiles, TileJSON and exports refuse a parameter they do not take; the pages and /data read theirs."""
    args = MultiDict([("stauts", "RETURNED"), (name_of(surface, "statuses"), "RETURNED")])
    if not refused:
        assert parse_filter(args, surface) == (Filter(statuses=("RETURNED",)), [])
        return
    with pytest.raises(FilterError, match="unknown parameter; this endpoint accepts ") as caught:
        parse_filter(args, surface)
    assert caught.value.param == "stauts"
