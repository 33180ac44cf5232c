"""The occupancy check: its inputs refused with the input named, and its report, on both backends."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from click.testing import CliRunner
from shapely.geometry import box, mapping

from gisapp import geo, schema
from gisapp.analysis.check import CheckLimits, CheckRules, Proposal, check_occupancy, parse_proposal
from gisapp.cli import cli
from gisapp.config import load_config
from gisapp.errors import InputError, RequestError
from tests.helpers import PROPOSAL_FILES, sample_proposals
from tests.stores import BACKENDS, new_store

D = dt.date.fromisoformat
ROOT = Path(__file__).resolve().parent.parent
X, Y = 548000.0, 1770700.0  # in Cẩm Lệ (EPSG:5899)
LIMITS = CheckLimits()


def lonlat(geom) -> dict:
    """``geom`` (EPSG:5899) as a GeoJSON geometry in WGS84."""
    return mapping(geo.transform([geom], schema.STORE_CRS, schema.WEB_CRS)[0])


def inputs(**changes) -> dict:
    base = {"geometry": lonlat(box(X + 20, Y, X + 25, Y + 1.5)), "start": "2022-03-01", "end": "2022-03-10",
            "purpose": "MATERIALS"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def rules(**changes) -> CheckRules:
    return CheckRules.from_config(load_config(), received_on=D("2022-03-01"), **changes)


# -- inputs ------------------------------------------------------------------------------------

BOW_TIE = {"type": "Polygon", "coordinates": [[[108.2, 16.01], [108.2001, 16.0101], [108.2001, 16.01],
                                              [108.2, 16.0101], [108.2, 16.01]]]}


@pytest.mark.parametrize("changes, field, words", [
    (dict(geometry={"type": "Point", "coordinates": [108.2, 16.01]}), "geometry", "a Point is not an area"),
    (dict(geometry={"type": "LineString", "coordinates": [[108.2, 16.01], [108.3, 16.02]]}), "geometry",
     "a LineString is not an area"),
    (dict(geometry="POLYGON((0 0, 1 0, 1 1, 0 0))"), "geometry", "GeoJSON geometry object"),
    (dict(geometry={"type": "Polygon", "coordinates": [[[2.35, 48.85], [2.36, 48.85], [2.36, 48.86],
                                                        [2.35, 48.85]]]}), "geometry", "outside Vietnam"),
    (dict(geometry={"type": "Polygon", "coordinates": [[["a", 1], [2, 3], [4, 5], ["a", 1]]]}), "geometry",
     "finite numbers"),
    (dict(geometry={"type": "Polygon", "coordinates": [[[108.2, 16.01], [108.3, 16.02]]]}), "geometry",
     "at least 3"),
    (dict(geometry=BOW_TIE), "geometry", "not valid .*Self-intersection.* redraw"),
    (dict(geometry=lonlat(box(X, Y, X + 30, Y + 20))), "geometry", "600.0 m²; at most 500 m²"),
    (dict(start="1/3/2022"), "start", "not a date"),
    (dict(end="2022-02-30"), "end", "no such day"),
    (dict(end="2022-02-28"), "end", "before the start"),
    (dict(end="2023-03-10"), "end", "375 days; at most 365 days"),
    (dict(purpose="PARTY"), "purpose", "unknown purpose 'PARTY'"),
    (dict(purpose=7), "purpose", "unknown purpose 7"),
    (dict(start=None), "start", "required input is missing"),
    (dict(construction_dossier_code=""), "construction_dossier_code", "dossier code"),
    (dict(colour="red"), "colour", "unknown input"),
])
def test_bad_inputs_are_refused_naming_the_input(changes, field, words):
    with pytest.raises(InputError, match=f"^{field}: .*{words}") as err:
        parse_proposal(inputs(**changes), limits=LIMITS)
    assert isinstance(err.value, RequestError) and err.value.status == 400
    assert err.value.body()["code"] == "InvalidParameterValue"


def test_inputs_that_are_not_an_object_are_refused():
    with pytest.raises(InputError, match="^inputs: "):
        parse_proposal(["geometry"], limits=LIMITS)  # type: ignore[arg-type]


def test_the_limits_come_from_the_settings(monkeypatch):
    monkeypatch.setenv("GISAPP_CHECK_MAX_AREA_M2", "5")
    monkeypatch.setenv("GISAPP_CHECK_MAX_DAYS", "3")
    limits = CheckLimits.from_config(load_config())
    assert limits == CheckLimits(5.0, 3)
    with pytest.raises(InputError, match="at most 5 m²"):
        parse_proposal(inputs(), limits=limits)
    with pytest.raises(InputError, match="at most 3 days"):
        parse_proposal(inputs(geometry=lonlat(box(X, Y, X + 1, Y + 1))), limits=limits)


def test_a_small_self_intersection_is_repaired():
    # a 5 × 1.5 m rectangle with a 1 cm spike crossing its own edge: repairing changes the area by far under 1 %
    ring = [(X + 20, Y), (X + 25, Y), (X + 25, Y + 1.5), (X + 22.51, Y + 1.5), (X + 22.5, Y + 1.49),
            (X + 22.49, Y + 1.51), (X + 22.495, Y + 1.5), (X + 20, Y + 1.5), (X + 20, Y)]
    polygon = shapely.Polygon(ring)
    assert not polygon.is_valid
    proposal = parse_proposal(inputs(geometry=lonlat(polygon)), limits=LIMITS)
    assert proposal.geometry.is_valid and abs(proposal.geometry.area - 7.5) < 0.01


def test_a_good_proposal_is_parsed_into_the_store_crs():
    proposal = parse_proposal(inputs(construction_dossier_code=" XD-1 "), limits=LIMITS)
    assert proposal.start == D("2022-03-01") and proposal.days == 10 and proposal.purpose == "MATERIALS"
    assert proposal.construction_dossier_code == "XD-1"
    assert abs(proposal.geometry.area - 7.5) < 0.01 and proposal.geometry.bounds[0] == pytest.approx(X + 20, abs=0.01)


# -- a hand-made street, on both backends -----------------------------------------------------

def street_frames() -> dict:
    """A 3 m sidewalk (50 m) with a lot behind it, one 1.0 m permit on the kerb side in March, one refused."""
    sidewalks = gpd.GeoDataFrame({"sidewalk_id": ["SW-1"], "ward_code": ["20305"], "street": ["Ông Ích Đường"],
                                  "width_m": [3.0], "street_class": ["MAIN"]},
                                 geometry=[box(X, Y, X + 50, Y + 3)], crs=schema.STORE_CRS)
    permits = gpd.GeoDataFrame({
        "permit_no": ["VH-1", "VH-2"], "ward_code": ["20305", "20305"], "purpose": ["BUSINESS", "EVENT"],
        "status": ["RETURNED", "REFUSED"], "applicant_name": ["Trần Thị B", "Lê Văn C"],
        "start_on": [D("2022-03-05"), D("2022-03-01")], "end_on": [D("2022-03-31"), D("2022-03-31")],
        "sidewalk_width_m": [3.0, 3.0], "used_width_m": [1.0, 3.0],
    }, geometry=[box(X + 21, Y + 2, X + 24, Y + 3), box(X + 20, Y, X + 25, Y + 3)], crs=schema.STORE_CRS)
    dossiers = gpd.GeoDataFrame({
        "dossier_code": ["XD-1"], "ward_code": ["20305"], "status": ["RETURNED"], "procedure": ["NEW_BUILD"],
        "work_category": ["OTHER"], "channel": ["ONLINE"], "received_on": [D("2022-01-10")],
        "issued_on": [D("2022-02-01")], "owner_name": ["Nguyễn Văn A"],
    }, geometry=[box(X + 18, Y - 20, X + 26, Y)], crs=schema.STORE_CRS)
    return {"sidewalks": sidewalks, "sidewalk_permits": permits, "construction_permits": dossiers}


@pytest.fixture(scope="module", params=BACKENDS)
def street(request, tmp_path_factory):
    """The street in a store of each backend, shared by the module's tests: a check writes nothing (tested)."""
    store = new_store(request.param, tmp_path_factory.mktemp("street"), request)
    store.write(street_frames(), meta={"as_of": "2022-03-01"})
    return store


def check(store, **changes):
    return check_occupancy(store, parse_proposal(inputs(**changes), limits=LIMITS), rules=rules())


def test_facing_occupancies_on_the_same_days_are_refused(street):
    report = check(street, geometry=lonlat(box(X + 20, Y, X + 25, Y + 1.0)))
    assert report["verdict"] == "REFUSE"
    assert report["narrowest_passage_m"] == 1.00 and report["narrowest_on"] == "2022-03-05"
    assert [r["code"] for r in report["reasons"]] == ["PASSAGE_TOO_NARROW"]
    assert "1.00 m on 2022-03-05" in report["reasons"][0]["en"] and report["reasons"][0]["vi"]
    assert report["sidewalk_ids"] == ["SW-1"] and report["clashes"] == []
    # the refused permit across the whole width occupies nothing; VH-1 is there 5–31 March: the closest
    # free 10 days end the day before it comes, or start the day after it leaves
    assert report["opportunities"] == [{"start": "2022-02-23", "end": "2022-03-04", "shift_days": -6},
                                       {"start": "2022-04-01", "end": "2022-04-10", "shift_days": 31}]


def test_facing_occupancies_on_other_days_leave_two_metres(street):
    report = check(street, geometry=lonlat(box(X + 20, Y, X + 25, Y + 1.0)), start="2022-02-01", end="2022-03-04")
    assert report["verdict"] == "OK" and report["reasons"] == []
    assert report["narrowest_passage_m"] == 2.00 and report["narrowest_on"] == "2022-02-01"


def test_a_clash_is_referred_with_its_overlap_and_free_windows(street):
    report = check(street, geometry=lonlat(box(X + 22, Y + 2.2, X + 26, Y + 3)), start="2022-03-20",
                   end="2022-04-05")
    assert report["verdict"] == "REFER"
    (clash,) = report["clashes"]
    assert clash["permit_no"] == "VH-1" and clash["overlap_days"] == 12
    assert (clash["overlap_start"], clash["overlap_end"]) == ("2022-03-20", "2022-03-31")
    assert clash["overlap_area_m2"] == pytest.approx(1.6, abs=1e-3)
    assert "applicant_name" not in clash
    assert report["opportunities"][0] == {"start": "2022-04-01", "end": "2022-04-17", "shift_days": 12}
    assert all(w["shift_days"] != 0 for w in report["opportunities"])


def test_personal_data_only_when_asked(street):
    proposal = parse_proposal(inputs(geometry=lonlat(box(X + 22, Y + 2.2, X + 26, Y + 3))), limits=LIMITS)
    public = check_occupancy(street, proposal, rules=rules())
    staff = check_occupancy(street, proposal, rules=rules(), personal=True)
    assert "Trần Thị B" not in json.dumps(public, ensure_ascii=False)
    assert "Nguyễn Văn A" not in json.dumps(public, ensure_ascii=False)
    assert staff["clashes"][0]["applicant_name"] == "Trần Thị B"
    assert staff["construction_dossier"]["owner_name"] == "Nguyễn Văn A"


def test_the_dossier_fronting_the_occupancy_is_found_and_sets_the_due_date(street):
    report = check(street)
    assert report["construction_dossier_code"] == "XD-1" and report["construction_dossier"]["how"] == "found"
    assert report["construction_dossier"]["works_start"] == "2022-02-01"
    # other works: 20 working days from Tuesday 1 March 2022 (no holiday in March)
    assert report["due_on"] == "2022-03-29" and report["due_basis"]["working_days"] == 20


def test_a_dossier_outside_its_works_period_is_not_linked(street):
    report = check(street, start="2023-03-01", end="2023-03-10")
    assert report["construction_dossier_code"] is None and report["due_basis"]["working_days"] == 5


def test_a_named_dossier_must_exist_and_front_the_occupancy(street):
    with pytest.raises(InputError, match="^construction_dossier_code: no dossier 'XD-404'"):
        check(street, construction_dossier_code="XD-404")
    far = check(street, geometry=lonlat(box(X + 40, Y, X + 44, Y + 1.0)), construction_dossier_code="XD-1")
    assert far["verdict"] == "REFER" and far["reasons"][-1]["code"] == "DOSSIER_NOT_NEAR"
    assert far["construction_dossier"]["how"] == "given"


def test_a_polygon_on_no_sidewalk_is_referred_not_a_crash(street):
    report = check(street, geometry=lonlat(box(X + 20, Y - 10, X + 25, Y - 8)))
    assert report["verdict"] == "REFER" and [r["code"] for r in report["reasons"]] == ["NOT_ON_SIDEWALK"]
    assert report["narrowest_passage_m"] is None and report["sidewalk_ids"] == []
    assert report["fee_vnd"] is None and "no sidewalk" in report["fee_note"]["en"]


def test_a_polygon_partly_off_the_sidewalk_is_referred(street):
    report = check(street, geometry=lonlat(box(X + 30, Y + 1, X + 34, Y + 5)))
    assert "PARTLY_OFF_SIDEWALK" in [r["code"] for r in report["reasons"]]


def test_the_fee_is_area_times_days_times_the_rate_with_the_example_notice(street):
    report = check(street, geometry=lonlat(box(X + 40, Y, X + 44, Y + 1.0)))
    # 4 m² × 10 days × 10,000 VND (MAIN, MATERIALS in the example table)
    assert report["fee_vnd"] == pytest.approx(400_000, rel=1e-3)
    assert "EXAMPLE" in report["fee_note"]["en"] and report["fee_table"] == "fees_example.csv"


def test_the_check_writes_nothing(street):
    before = street.version()
    check(street)
    assert street.version() == before


def test_the_report_is_json_ready(street):
    report = check(street)
    assert json.loads(json.dumps(report)) == report
    for key in ("verdict", "reasons", "ward_code", "sidewalk_ids", "area_m2", "narrowest_passage_m", "narrowest_on",
                "clashes", "opportunities", "construction_dossier_code", "due_on", "fee_vnd", "fee_note"):
        assert key in report


# -- the demo's sample proposals ---------------------------------------------------------------

def test_the_sample_proposal_files_are_built_from_the_demo(demo_frames):
    built = sample_proposals(demo_frames[0])
    for verdict, path in PROPOSAL_FILES.items():
        assert json.loads((ROOT / path).read_text(encoding="utf-8")) == json.loads(json.dumps(built[verdict]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_verdict_appears_on_the_demo(backend, demo_frames, tmp_path, request):
    store = new_store(backend, tmp_path, request)
    store.write(*demo_frames[:1], meta=demo_frames[1])
    for verdict, path in PROPOSAL_FILES.items():
        feature = json.loads((ROOT / path).read_text(encoding="utf-8"))
        props = feature["properties"]
        proposal = parse_proposal({"geometry": feature["geometry"], "start": props["start"], "end": props["end"],
                                   "purpose": props["purpose"]}, limits=LIMITS)
        report = check_occupancy(store, proposal, rules=rules())
        assert report["verdict"] == verdict, (verdict, report["reasons"])
    assert report["narrowest_passage_m"] == pytest.approx(1.0, abs=0.02)  # the REFUSE sample


def test_the_command_prints_the_report(demo_store):
    runner = CliRunner()
    path = str(ROOT / PROPOSAL_FILES["REFUSE"])
    result = runner.invoke(cli, ["--store", str(demo_store.path), "check", path, "--lang", "en",
                                 "--received-on", "2022-05-10"])
    assert result.exit_code == 0, result.output
    assert "verdict: REFUSE" in result.output and "EXAMPLE" in result.output
    result = runner.invoke(cli, ["--store", str(demo_store.path), "check", path, "--json"])
    report = json.loads(result.output)
    assert report["verdict"] == "REFUSE" and report["construction_dossier_code"]
    assert report["construction_dossier"]["owner_name"]  # the operator sees everything
    bad = runner.invoke(cli, ["--store", str(demo_store.path), "check", path, "--end", "2000-01-01"])
    assert bad.exit_code == 2 and "end: 2000-01-01 is before the start" in bad.output
    unknown = runner.invoke(cli, ["--store", str(demo_store.path), "check", path, "--dossier", "XD-404"])
    assert unknown.exit_code == 2 and "construction_dossier_code: no dossier 'XD-404'" in unknown.output


def test_the_command_needs_dates_and_purpose_somewhere(demo_store, tmp_path):
    feature = copy.deepcopy(json.loads((ROOT / PROPOSAL_FILES["OK"]).read_text(encoding="utf-8")))
    feature["properties"] = {}
    path = tmp_path / "p.geojson"
    path.write_text(json.dumps(feature), encoding="utf-8")
    result = CliRunner().invoke(cli, ["--store", str(demo_store.path), "check", str(path), "--end", "2022-05-20"])
    assert result.exit_code == 2 and "--start is required" in result.output


def test_a_proposal_is_a_frozen_value():
    proposal = Proposal(box(0, 0, 1, 1), D("2022-01-01"), D("2022-01-02"), "EVENT")
    with pytest.raises(AttributeError):
        proposal.purpose = "BUSINESS"  # type: ignore[misc]


def test_an_office_imports_its_sidewalks_through_the_same_validation(demo_frames, tmp_path):
    walks = demo_frames[0]["sidewalks"].head(20).copy()
    walks["street_class"] = walks["street_class"].astype(object)
    walks.loc[walks.index[3], "street_class"] = "HIGHWAY"
    path = tmp_path / "sidewalks.geojson"
    walks.to_crs(schema.WEB_CRS).to_file(path, driver="GeoJSON")
    store_path = tmp_path / "s.gpkg"
    runner = CliRunner()
    seeded = runner.invoke(cli, ["--store", str(store_path), "seed", "--no-analyze"])
    assert seeded.exit_code == 0, seeded.output
    result = runner.invoke(cli, ["--store", str(store_path), "import", "sidewalks", str(path), "--mode", "replace"])
    assert result.exit_code == 0, result.output
    assert "accepted 19" in result.output and "rejected 1" in result.output
    rejects = (tmp_path / "sidewalks.rejects.csv").read_text(encoding="utf-8-sig")
    assert "HIGHWAY" in rejects and "street_class" in rejects
    from gisapp.store.gpkg import GeoPackageStore

    stored = GeoPackageStore(store_path).read("sidewalks")
    assert len(stored) == 19 and set(stored["ward_code"]) <= set(walks["ward_code"])
