"""BLDS open-data files: read back with pandas and checked column by column against the store."""

import io

import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

from gisapp import geo
from gisapp.cli import cli
from gisapp.formats import blds
from gisapp.store.gpkg import GeoPackageStore
from gisapp.web.app import create_app
from tests.helpers import permits


def read(body: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False, encoding="utf-8")


@pytest.fixture
def client(demo_store):
    app = create_app({"STORE": str(demo_store.path), "TESTING": True, "BASEMAP": "none",
                      "SHOW_PERSONAL_DATA": True})  # staff: personal data must still stay out
    return app.test_client()


@pytest.fixture
def files(client):
    out = {}
    for name in blds.DATASETS:
        r = client.get(f"/export/blds/{name}.csv")
        assert r.status_code == 200 and r.content_type == "text/csv; charset=utf-8"
        assert not r.data.startswith(b"\xef\xbb\xbf")
        out[name] = r.data
    return out


def iso(series) -> list[str]:
    return pd.to_datetime(series).dt.strftime("%Y-%m-%d").fillna("").tolist()


def test_permits_file_column_by_column(files, demo_store):
    frame = read(files["permits"])
    assert tuple(frame.columns) == blds.PERMIT_COLUMNS
    dossiers = demo_store.read("construction_permits")
    sidewalk = demo_store.read("sidewalk_permits")
    assert len(frame) == len(dossiers) + len(sidewalk)
    d = frame.iloc[:len(dossiers)].reset_index(drop=True)
    assert d["PermitNum"].tolist() == dossiers["dossier_code"].tolist()
    assert d["AppliedDate"].tolist() == iso(dossiers["received_on"])
    assert d["IssuedDate"].tolist() == iso(dossiers["issued_on"])
    assert d["CompletedDate"].tolist() == iso(dossiers["completed_on"])
    assert d["StatusCurrent"].tolist() == dossiers["status"].tolist()
    assert d["StatusCurrentMapped"].tolist() == [blds.STATUS_MAPPED[s] for s in dossiers["status"]]
    assert d["OriginalAddress1"].tolist() == dossiers["site_address"].tolist()
    assert set(d["OriginalCity"]) == {"Đà Nẵng"} and set(d["OriginalState"]) == {""} and set(d["OriginalZip"]) == {""}
    assert d["PIN"].tolist() == (dossiers["ward_code"] + "-" + dossiers["map_sheet_no"] + "-"
                                 + dossiers["parcel_no"]).tolist()
    codes = dossiers["dossier_code"]
    assert all(link.endswith(f"/permits/{code}") for link, code in zip(d["Link"], codes, strict=True))
    points = geo.transform(shapely.point_on_surface(np.asarray(dossiers.geometry.values)))
    assert np.allclose(d["Longitude"].astype(float), shapely.get_x(points), atol=1e-7)
    assert np.allclose(d["Latitude"].astype(float), shapely.get_y(points), atol=1e-7)
    # StatusDate: the day of the last status change
    history = demo_store.status_history("construction_permits")
    last = history.drop_duplicates("key", keep="last").set_index("key")["changed_on"]
    assert d["StatusDate"].tolist() == iso(dossiers["dossier_code"].map(last))
    s = frame.iloc[len(dossiers):].reset_index(drop=True)
    assert s["PermitNum"].tolist() == sidewalk["permit_no"].tolist()
    assert s["StatusCurrent"].tolist() == sidewalk["status"].tolist()
    assert s["OriginalAddress1"].tolist() == sidewalk["address"].tolist()
    assert set(s["PermitClass"]) == {"Sidewalk use"}
    # every mapped value is one BLDS allows, every date is YYYY-MM-DD
    assert set(frame["StatusCurrentMapped"]) <= set(blds.BLDS_MAPPED_VALUES)
    for column in ("AppliedDate", "IssuedDate", "CompletedDate", "StatusDate"):
        assert frame[column].str.fullmatch(r"(\d{4}-\d{2}-\d{2})?").all()


def test_no_personal_data(files, demo_store):
    dossiers = demo_store.read("construction_permits")
    sidewalk = demo_store.read("sidewalk_permits")
    text = b"".join(files.values()).decode()
    for name in [*dossiers["owner_name"].head(50), *dossiers["owner_id_no"].head(50),
                 *sidewalk["applicant_name"].head(50)]:
        assert name not in text


def test_status_changes_file_column_by_column(files, demo_store):
    frame = read(files["status_changes"])
    assert tuple(frame.columns) == blds.STATUS_CHANGE_COLUMNS
    history = pd.concat([demo_store.status_history("construction_permits"),
                         demo_store.status_history("sidewalk_permits")], ignore_index=True)
    earlier = history[history.duplicated(["layer", "key"], keep="last")]
    assert len(frame) == len(earlier) == len(history) - history["key"].nunique()
    assert frame["PermitNum"].tolist() == earlier["key"].tolist()
    assert frame["StatusPrevious"].tolist() == earlier["status"].tolist()
    assert frame["StatusPreviousDate"].tolist() == iso(earlier["changed_on"])
    assert frame["StatusPreviousMapped"].tolist() == [blds.STATUS_MAPPED[s] for s in earlier["status"]]


def test_cli_writes_the_same_files(files, demo_store, tmp_path):
    out = tmp_path / "blds"
    result = CliRunner().invoke(cli, ["--store", str(demo_store.path), "export", "--blds", str(out)])
    assert result.exit_code == 0, result.output
    for name, body in files.items():
        web, cli_ = read(body), read((out / f"{name}.csv").read_bytes())
        pd.testing.assert_frame_equal(web.drop(columns=["Link"], errors="ignore"),
                                      cli_.drop(columns=["Link"], errors="ignore"))


def test_formulas_are_made_inert(tmp_path):
    frame = permits(3)
    frame.loc[0, "site_address"] = "=HYPERLINK(\"http://x\")"
    store = GeoPackageStore(tmp_path / "s.gpkg", must_exist=False)
    store.write({"construction_permits": frame})
    out = read(blds.dataset_csv(store, "permits", lambda key: ""))
    assert out["OriginalAddress1"].iloc[0] == "'=HYPERLINK(\"http://x\")"


def test_unknown_dataset_and_parameters(client):
    assert client.get("/export/blds/inspections.csv").status_code == 404
    assert client.get("/export/blds/permits.csv?ward=20260").status_code == 400


def test_mapping_covers_every_status():
    from gisapp import domain

    assert set(blds.STATUS_MAPPED) == set(domain.STATUSES)
    assert set(blds.STATUS_MAPPED.values()) <= set(blds.BLDS_MAPPED_VALUES)
