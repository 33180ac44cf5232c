"""Parsing filters from URL parameters, strictly (the map's data) and leniently (pages)."""

import datetime as dt

import pytest
from werkzeug.datastructures import MultiDict

from gisapp.filters import Filter, FilterError, fold, parse_filter


def parse(strict=True, known_wards=None, **params):
    args = MultiDict([(k, v) for k, vs in params.items() for v in (vs if isinstance(vs, list) else [vs])])
    return parse_filter(args, "map" if strict else "page", known_wards=known_wards)


def test_repeatable_and_comma_separated_values():
    flt, warnings = parse(ward=["20305", "20306,20260"], status="processing,RETURNED", q=" Ông Ích ")
    assert flt.wards == ("20305", "20306", "20260")
    assert flt.statuses == ("PROCESSING", "RETURNED")
    assert flt.q == "Ông Ích" and warnings == []


def test_dates_and_bbox():
    flt, _ = parse(**{"from": "2022-01-01", "to": "2022-06-30", "bbox": "108.1,15.9,108.3,16.1"})
    assert flt.date_from == dt.date(2022, 1, 1) and flt.date_to == dt.date(2022, 6, 30)
    assert flt.bbox == (108.1, 15.9, 108.3, 16.1)


def test_round_trip_through_params():
    flt = Filter(wards=("20305",), statuses=("PROCESSING",), date_from=dt.date(2022, 1, 1), q="x",
                 bbox=(108.1, 15.9, 108.3, 16.1))
    again, _ = parse(**flt.to_params())
    assert again == flt


@pytest.mark.parametrize(
    "params, param, message",
    [
        ({"ward": "99999"}, "ward", "unknown ward code '99999'"),
        ({"ward": "abc"}, "ward", "unknown ward code"),
        ({"status": "DONE"}, "status", "unknown status code 'DONE'"),
        ({"procedure": "X"}, "procedure", "unknown procedure code"),
        ({"channel": "FAX"}, "channel", "unknown channel code"),
        ({"purpose": "PICNIC"}, "purpose", "unknown purpose code"),
        ({"kind": "BAD"}, "kind", "unknown kind code"),
        ({"from": "01/02/2022"}, "from", "is not a date"),
        ({"to": "2022-02-30"}, "to", "is not a date"),
        ({"from": "2022-03-01", "to": "2022-02-01"}, "from", "'from' is after 'to'"),
        ({"bbox": "1,2,3"}, "bbox", "needs four numbers"),
        ({"bbox": "a,b,c,d"}, "bbox", "not a number"),
        ({"bbox": "108.3,15.9,108.1,16.1"}, "bbox", "minimum is greater than maximum"),
        ({"bbox": "200,15,201,16"}, "bbox", "-180..180"),
        ({"bbox": "nan,1,2,3"}, "bbox", "finite"),
        ({"q": "x" * 201}, "q", "longer than 200"),
    ],
)
def test_bad_values(params, param, message):
    with pytest.raises(FilterError, match=message) as err:
        parse(known_wards={"20260", "20305"}, **params)
    assert err.value.param == param
    flt, warnings = parse(strict=False, known_wards={"20260", "20305"}, **params)
    assert len(warnings) == 1 and message.split("'")[0] in warnings[0] and warnings[0].startswith(param)


def test_lenient_keeps_the_good_values():
    flt, warnings = parse(strict=False, known_wards={"20260"}, ward="20260,99999", status="PROCESSING,NOPE")
    assert flt.wards == ("20260",) and flt.statuses == ("PROCESSING",)
    assert len(warnings) == 2


def test_fold():
    assert fold("Hòa Thọ Đông") == "hoa tho dong"
    assert fold("HOA THO DONG") == "hoa tho dong"
    # Windows-1258 style: base letter + combining tone mark.
    assert fold("Ho\u0300a") == fold("Hòa") == "hoa"


@pytest.mark.slow
def test_fold_by_table_equals_decomposing_whole_texts():
    """The translate-table fold equals NFD of the whole text without marks, on every code point and on
    texts whose marks NFD would reorder."""
    import unicodedata

    def by_nfd(text):
        decomposed = unicodedata.normalize("NFD", text)
        bare = "".join(c for c in decomposed if not unicodedata.combining(c))
        return bare.replace("đ", "d").replace("Đ", "D").lower()

    chars = [chr(i) for i in range(0x110000) if not 0xD800 <= i < 0xE000]
    assert [fold(c) for c in chars] == [by_nfd(c) for c in chars]
    for text in ("ΑΣ", "İstanbul", "Đ\u0301", "e\u0301\u0323", "ﬁ Ǆ", "Hòa Thọ Đông"):
        assert fold(text) == by_nfd(text)
