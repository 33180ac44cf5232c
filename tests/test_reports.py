"""The printed reports (issue 17): review report, dossier sheet and map print, read back from the PDF.

The PDFs are made by the real typesetter (WeasyPrint over Pango) and read with pypdf (structure: pages,
page size, fonts) and pdfplumber (text); the map page is rasterised with poppler's ``pdftoppm``.
"""

import datetime as dt
import io
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pdfplumber
import pypdf
import pytest
from click.testing import CliRunner

from gisapp import domain, i18n
from gisapp.analysis.overlaps import AnalysisParams, find_overlaps
from gisapp.cli import cli
from gisapp.reports import maps, render, texts
from gisapp.store.gpkg import GeoPackageStore
from gisapp.web.app import create_app
from tests.stores import BACKENDS, new_store

H1 = {"from": "2022-01-01", "to": "2022-06-30"}
A4 = (595.28, 841.89)  # points


@pytest.fixture(scope="module")
def store_path(tmp_path_factory, demo_frames):
    """The demo with its findings (the analysis run), as ``gisapp seed`` leaves it."""
    frames, meta = demo_frames
    path = tmp_path_factory.mktemp("reports") / "demo.gpkg"
    findings = find_overlaps(frames["construction_permits"], frames["sidewalk_permits"], frames["wards"],
                             AnalysisParams()).findings
    GeoPackageStore(path, must_exist=False).write({**frames, "findings": findings}, meta=meta)
    return str(path)


def make_app(store_path, **config):
    return create_app({"STORE": store_path, "TESTING": True, "REPORT_WORKERS": 0, **config})


@pytest.fixture(scope="module")
def client(store_path):
    return make_app(store_path).test_client()


@pytest.fixture(scope="module")
def h1_pdf(client):
    r = client.get("/reports/review.pdf", query_string=H1)
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    return r.data


def text_of(body: bytes) -> list[str]:
    """The text of every page (pdfplumber)."""
    with pdfplumber.open(io.BytesIO(body)) as pdf:
        return [page.extract_text() or "" for page in pdf.pages]


def map_text(body: bytes, page: int | None = None) -> str:
    """The text of the maps (SVG text, read with pypdf: pdfplumber runs the words of SVG text together)."""
    pages = pypdf.PdfReader(io.BytesIO(body)).pages
    return flat([p.extract_text() for p in (pages if page is None else [pages[page]])])


def flat(pages: list[str]) -> str:
    return re.sub(r"\s+", " ", " ".join(pages))


def a_dossier(store_path, **where) -> dict:
    frame = GeoPackageStore(store_path).read("construction_permits")
    for k, v in where.items():
        frame = frame[frame[k].notna()] if v is any else frame[frame[k] == v]
    return frame.iloc[0].to_dict()


# -- the review report ----------------------------------------------------------------------

def test_h1_2022_review_shows_the_articles_figures(h1_pdf):
    text = flat(text_of(h1_pdf))
    assert "Hồ sơ tiếp nhận 2.534" in text
    assert "Nộp trực tuyến 54,5 %" in text
    assert "Giải quyết trễ hạn 0" in text and "Không có hồ sơ trễ hẹn." in text
    assert "từ ngày 01/01/2022 đến ngày 30/06/2022" in text
    assert "Số liệu tính đến ngày 08/07/2022" in text
    # per procedure, the sidewalk section and the lists are there
    assert "Cấp mới 1.571" in text and "Sử dụng tạm thời vỉa hè" in text
    assert "Chồng lấn vỉa hè (cùng nơi, cùng thời gian)" in text and "Hồ sơ đang xử lý quá hạn (0)" in text


def test_review_has_the_dashboards_figures_per_ward(client, h1_pdf):
    page = client.get("/wards", query_string=H1).get_data(as_text=True)
    text = flat(text_of(h1_pdf))
    total = re.search(r'data-testid="total-received">(\d+)<', page).group(1)
    online = re.search(r'data-testid="total-online-share">([^<]+)<', page).group(1)
    assert total == "2534" and online == "54,5 %"
    assert f"{int(total):,}".replace(",", ".") in text and online in text
    for code, received in re.findall(r'data-testid="received-(\d+)">(\d+)<', page):
        name = re.search(rf'data-ward="{code}">\s*<td><a [^>]*>{code} — ([^<]+)</a>', page).group(1)
        row = re.search(rf"{name} \({code}\) ([\d.]+) ", text)
        assert row, (code, name)
        assert row.group(1).replace(".", "") == received, (code, name)


def test_review_keeps_vietnamese_letters_and_embeds_its_fonts(h1_pdf):
    text = flat(text_of(h1_pdf))
    for words in ("Hòa Thọ Tây", "Hòa Thọ Đông", "Khuê Trung", "Phường", "Đang xử lý quá hạn", "Hồ sơ đã giải quyết",
                  "Chồng lấn vỉa hè"):
        assert words in text, words
    reader = pypdf.PdfReader(io.BytesIO(h1_pdf))
    fonts = {}
    for page in reader.pages:
        for font in page["/Resources"]["/Font"].values():
            font = font.get_object()
            for desc in font.get("/DescendantFonts", [font]):
                desc = desc.get_object()
                fonts[str(desc["/BaseFont"])] = desc["/FontDescriptor"].get_object()
    assert fonts and any("DejaVu" in name or "Noto" in name for name in fonts)
    for name, descriptor in fonts.items():
        assert any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")), f"{name} not embedded"


def test_review_is_a4_portrait_with_numbered_pages(h1_pdf):
    reader = pypdf.PdfReader(io.BytesIO(h1_pdf))
    assert len(reader.pages) == 5  # cover, per ward + chart, map, sidewalk, lists
    for page in reader.pages:
        assert (float(page.mediabox.width), float(page.mediabox.height)) == pytest.approx(A4, abs=0.1)
    pages = text_of(h1_pdf)
    for i, text in enumerate(pages, 1):
        assert f"Trang {i} / 5" in text and "Lập lúc" in text
    assert "http://localhost/wards?from=2022-01-01&to=2022-06-30" in flat(pages).replace("? ", "?")
    assert "Bộ lọc Ngày tiếp nhận: từ ngày 01/01/2022 đến ngày 30/06/2022" in flat(pages)


def test_review_links_back_through_the_base_url(store_path):
    client = make_app(store_path, BASE_URL="https://gis.example.vn/gisapp").test_client()
    r = client.get("/reports/review.pdf", query_string={**H1, "ward": "20311"})
    text = flat(text_of(r.data))
    assert "https://gis.example.vn/gisapp/wards?ward=20311&from=2022-01-01&to=2022-06-30" in text.replace("? ", "?")
    assert "Phường Hòa Thọ Tây" in text and "Hòa Xuân" not in text.split("Theo phường")[1].split("Bản đồ")[0]


def test_the_map_page_has_legend_scale_bar_and_north_arrow(h1_pdf, tmp_path):
    page = map_text(h1_pdf, 2)
    assert "Bản đồ hồ sơ tiếp nhận theo phường" in page
    assert "Hồ sơ tiếp nhận" in page and re.search(r"603–708", page)  # the legend's title and top class
    assert re.search(r"\b\d+ (m|km)\b", page)  # the scale bar's label
    assert " B " in page and "© OpenStreetMap contributors" in page  # north arrow (Bắc), attribution
    for name in ("Hòa Thọ Tây", "Hòa Xuân", "Khuê Trung"):
        assert name in page
    png = rasterise(h1_pdf, 3, tmp_path)
    from PIL import Image

    image = Image.open(png).convert("RGB")
    colours = image.getcolors(1 << 20)
    darkest_blue = (8, 81, 156)  # the choropleth's top class (#08519c)
    assert any(c == darkest_blue and n > 1000 for n, c in colours), "no ward filled with the top class"


def rasterise(body: bytes, page: int, folder) -> str:
    """Page ``page`` of the PDF as PNG via poppler's pdftoppm (fails under CI, skips elsewhere, without it)."""
    if not shutil.which("pdftoppm"):
        if os.environ.get("CI") == "true":
            pytest.fail("pdftoppm (poppler-utils) is missing")
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    src = folder / "report.pdf"
    src.write_bytes(body)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", str(page), "-l", str(page), "-singlefile", str(src),
                    str(folder / "page")], check=True)
    return str(folder / "page.png")


def test_a_period_without_dossiers_is_a_report_that_says_so(client):
    r = client.get("/reports/review.pdf", query_string={"from": "2030-01-01", "to": "2030-06-30"})
    assert r.status_code == 200
    text = flat(text_of(r.data))
    assert "Không có hồ sơ nào trong kỳ báo cáo với bộ lọc này." in text
    assert "Hồ sơ tiếp nhận 0" in text


@pytest.mark.parametrize(("query", "param", "words"), [
    ({"ward": "99999"}, "ward", "unknown ward code '99999'"),
    ({"from": "2022-07-01", "to": "2022-01-01"}, "from", "'from' is after 'to'"),
    ({"from": "1/1/2022"}, "from", "is not a date (YYYY-MM-DD)"),
])
def test_bad_input_is_the_one_error(client, query, param, words):
    r = client.get("/reports/review.pdf", query_string=query)
    assert r.status_code == 400 and r.mimetype == "application/json"
    body = r.get_json()
    assert set(body) == {"code", "description", "status"} and body["code"] == "InvalidParameterValue"
    assert body["description"].startswith(f"{param}: ") and words in body["description"]


def test_too_many_dossiers_are_refused_naming_the_limit(store_path):
    client = make_app(store_path, REPORT_MAX_DOSSIERS=1000).test_client()
    r = client.get("/reports/review.pdf", query_string=H1)
    assert r.status_code == 413
    assert r.get_json()["code"] == "ReportTooLarge" and "GISAPP_REPORT_MAX_DOSSIERS" in r.get_json()["description"]
    assert client.get("/reports/review.pdf", query_string={**H1, "ward": "20260"}).status_code == 200  # 180 match


def test_review_as_of_a_day_has_the_dashboards_figures_of_that_day(client):
    query = {**H1, "as_of": "2022-06-30"}
    r = client.get("/reports/review.pdf", query_string=query)
    assert r.status_code == 200 and "den-ngay-2022-06-30.pdf" in r.headers["Content-Disposition"]
    text = flat(text_of(r.data))
    assert "Hồ sơ tiếp nhận 2.534" in text and "Nộp trực tuyến 54,5 %" in text and "Giải quyết trễ hạn 0" in text
    assert "Số liệu tính đến ngày 30/06/2022" in text and "Đang xem số liệu tại ngày 30/06/2022" in text
    assert "as_of=2022-06-30" in text  # the link back is to the same view
    page = client.get("/wards", query_string=query).get_data(as_text=True)
    assert 'data-testid="as-of-notice"' in page
    figures = {name: re.search(rf'data-testid="total-{name}">([^<]+)<', page).group(1).strip()
               for name in ("received", "online-share", "on-time-share", "open", "overdue", "late")}
    assert figures["received"] == "2534" and figures["online-share"] == "54,5 %" and figures["late"] == "0"
    assert f"Đang xử lý {int(figures['open']):,}".replace(",", ".") in text
    assert f"Đang xử lý quá hạn {int(figures['overdue']):,}".replace(",", ".") in text
    assert f"({figures['on-time-share']})" in text
    for code, received in re.findall(r'data-testid="received-(\d+)">(\d+)<', page):
        row = re.search(rf"\({code}\) ([\d.]+) ", text)
        assert row and row.group(1).replace(".", "") == received, code
    # earlier in the period: only the dossiers received by then, per procedure as well
    march = {**H1, "as_of": "2022-03-31"}
    text = flat(text_of(client.get("/reports/review.pdf", query_string=march).data))
    page = client.get("/wards", query_string=march).get_data(as_text=True)
    received = int(re.search(r'data-testid="total-received">(\d+)<', page).group(1))
    assert 0 < received < 2534 and f"Hồ sơ tiếp nhận {received:,}".replace(",", ".") in text
    per_procedure = 0  # the table wraps its labels: "Sửa chữa, cải 228 … tạo"
    for code in domain.PROCEDURES:
        start = re.escape(" ".join(domain.label("procedure", code).split()[:2]))
        row = re.search(rf"{start}(?: [^\d\s]+)? ([\d.]+) ", text.split("Theo thủ tục", 1)[1])
        per_procedure += int(row.group(1).replace(".", "")) if row else 0
    assert per_procedure == received


def test_review_bad_as_of_is_a_400_naming_it(client, store_path, tmp_path):
    r = client.get("/reports/review.pdf", query_string={**H1, "as_of": "30/06/2022"})
    assert r.status_code == 400 and r.get_json()["description"].startswith("as_of: ")
    assert "'30/06/2022' is not a date (YYYY-MM-DD)" in r.get_json()["description"]
    bad = CliRunner().invoke(cli, ["--store", store_path, "report", "review", "--as-of", "yesterday", "-o",
                                   str(tmp_path / "x.pdf")])
    assert bad.exit_code == 2 and "as_of: 'yesterday' is not a date" in bad.output


def test_cli_review_as_of(store_path, tmp_path):
    out = tmp_path / "r.pdf"
    ok = CliRunner().invoke(cli, ["--store", store_path, "report", "review", "--from", H1["from"], "--to", H1["to"],
                                  "--as-of", "2022-06-30", "-o", str(out)])
    assert ok.exit_code == 0, ok.output
    text = flat(text_of(out.read_bytes()))
    assert "Hồ sơ tiếp nhận 2.534" in text and "Số liệu tính đến ngày 30/06/2022" in text


# -- the dossier sheet ------------------------------------------------------------------------

def test_dossier_sheet_is_one_a4_page_with_its_map(client, store_path):
    rec = a_dossier(store_path, owner_name=any)
    r = client.get(f"/permits/{rec['dossier_code']}.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    reader = pypdf.PdfReader(io.BytesIO(r.data))
    assert len(reader.pages) == 1
    assert (float(reader.pages[0].mediabox.width), float(reader.pages[0].mediabox.height)) == pytest.approx(A4, abs=.1)
    text = flat(text_of(r.data))
    assert rec["dossier_code"] in text and "Thời hạn giải quyết" in text and "Ngày hẹn trả" in text
    assert re.search(r"Tỷ lệ 1:(500|1\.000)", text)
    drawn = map_text(r.data)
    assert "Thửa đất của hồ sơ" in drawn and "Thửa lân cận" in drawn and "Chú giải" in drawn  # the legend
    assert re.search(r"\b\d+ m\b", drawn)  # the scale bar


def test_anonymous_dossier_sheet_shows_no_owner(store_path):
    rec = a_dossier(store_path, owner_name=any)
    anonymous = flat(text_of(make_app(store_path).test_client().get(f"/permits/{rec['dossier_code']}.pdf").data))
    staff = flat(text_of(make_app(store_path, SHOW_PERSONAL_DATA=True).test_client()
                         .get(f"/permits/{rec['dossier_code']}.pdf").data))
    assert rec["dossier_code"] in anonymous
    assert rec["owner_name"] not in anonymous and rec["owner_id_no"] not in anonymous
    assert "Chủ đầu tư" not in anonymous and "Thông tin cá nhân chỉ hiển thị" in anonymous
    assert rec["owner_name"] in staff and rec["owner_id_no"] in staff


def test_dossier_sheet_checks_its_new_sidewalk_applications(store_path, tmp_path):
    """A NEW application filed for the dossier (as the map's tool files it) is listed with the occupancy
    check's verdict, narrowest passage and fee; the sidewalks are drawn and in the legend."""
    import json

    from gisapp.web import occupancy

    path = tmp_path / "filed.gpkg"
    shutil.copy(store_path, path)
    app = make_app(str(path), SHOW_PERSONAL_DATA=True, REPORT_WORKERS=1)  # made in a report process
    feature = json.loads(open("tests/data/proposals/refuse.geojson", encoding="utf-8").read())
    inputs = {"geometry": feature["geometry"], **{k: feature["properties"][k] for k in ("start", "end", "purpose")}}
    saved = occupancy.save(GeoPackageStore(path), {"inputs": inputs, "applicant_name": "Trần Thị Vỉa"}, app.config)
    code = saved.report["construction_dossier_code"]
    assert code and saved.report["verdict"] == "REFUSE"
    try:
        r = app.test_client().get(f"/permits/{code}.pdf")
    finally:
        app.extensions["gisapp_reports"].close()
    assert r.status_code == 200 and len(pypdf.PdfReader(io.BytesIO(r.data)).pages) == 1
    text = flat(text_of(r.data))
    assert saved.permit_no in text and "Đơn xin sử dụng tạm thời vỉa hè mới đăng ký" in text
    assert "Không đủ điều kiện" in text and "Lối đi bộ còn lại hẹp nhất" in text  # the verdict and its reason
    width = f"{saved.report['narrowest_passage_m']:.2f}".rstrip("0").rstrip(".").replace(".", ",")
    assert f"{width} m" in text  # narrowest passage, as the check reckons it with the application excluded
    assert saved.report["fee_vnd"] and f"{saved.report['fee_vnd']:,} đ".replace(",", ".") in text  # the fee table
    assert "Trần Thị Vỉa" in text
    assert "Vỉa hè" in map_text(r.data)  # the sidewalks layer in the legend
    anonymous = flat(text_of(make_app(str(path)).test_client().get(f"/permits/{code}.pdf").data))
    assert "Không đủ điều kiện" in anonymous and "Trần Thị Vỉa" not in anonymous


def test_dossier_sheet_as_of_a_day_prints_that_days_status(demo_store):
    """``as_of`` on the sheet: the status from the history at the end of that day (as the permit page shows
    it), the day in the header and its link; a dossier received later says so; a bad day is a 400."""
    day = "2022-03-31"
    past = demo_store.statuses_as_of("construction_permits", dt.date.fromisoformat(day))
    frame = demo_store.read("construction_permits").merge(past, left_on="dossier_code", right_on="key")
    changed = frame[frame["status_x"] != frame["status_y"]].iloc[0]
    later = demo_store.read("construction_permits")
    later = later[later["received_on"] > pd.Timestamp(day)].iloc[0]
    client = make_app(str(demo_store.path)).test_client()
    page = client.get(f"/permits/{changed['dossier_code']}", query_string={"as_of": day})
    assert f'href="/permits/{changed["dossier_code"]}.pdf?as_of={day}"' in page.get_data(as_text=True)
    r = client.get(f"/permits/{changed['dossier_code']}.pdf", query_string={"as_of": day})
    assert r.status_code == 200
    text = flat(text_of(r.data))
    then = domain.label("status", changed["status_y"], "vi")
    assert f"Tình trạng tại ngày 31/03/2022: {then}" in text and "Số liệu tính đến ngày 31/03/2022" in text
    assert f"?as_of={day}" in text
    text = flat(text_of(client.get(f"/permits/{later['dossier_code']}.pdf", query_string={"as_of": day})
                        .data))
    assert "Hồ sơ chưa được tiếp nhận vào ngày 31/03/2022" in text
    for bad in ({"as_of": "31/03/2022"}, {"as_of": "1980-01-01"}, {"asof": day}):
        body = client.get(f"/permits/{changed['dossier_code']}.pdf", query_string=bad).get_json()
        assert body["status"] == 400 and body["description"].startswith(tuple(bad)[0])


def test_map_print_as_of_a_day_counts_and_colours_that_days_dossiers(demo_store):
    day = "2022-03-31"
    client = make_app(str(demo_store.path)).test_client()
    count = client.get("/data/count", query_string={"as_of": day}).get_json()["count"]
    assert count < demo_store.count("construction_permits")
    r = client.get("/reports/map.pdf", query_string={"as_of": day})
    assert r.status_code == 200
    text = flat(text_of(r.data))
    assert f"{count:,}".replace(",", ".") + " hồ sơ phù hợp bộ lọc" in text
    assert "Số liệu tính đến ngày 31/03/2022" in text
    past = demo_store.statuses_as_of("construction_permits", dt.date.fromisoformat(day))
    received = demo_store.read("construction_permits")
    received = received[received["received_on"] <= pd.Timestamp(day)]
    then = received["dossier_code"].map(dict(zip(past["key"], past["status"]))).fillna(received["status"])
    drawn = map_text(r.data)
    for code, n in then.value_counts().items():  # the legend counts the statuses of that day
        assert f"{domain.label('status', code, 'vi')} ({n:,})".replace(",", ".") in drawn


def test_unknown_dossier_is_404(client):
    r = client.get("/permits/XD-NO-SUCH.pdf")
    assert r.status_code == 404 and r.get_json()["code"] == "NotFound" and "XD-NO-SUCH" in r.get_json()["description"]


# -- the map print --------------------------------------------------------------------------

def test_map_print_has_the_filter_in_words_count_legend_and_scale(client):
    r = client.get("/reports/map.pdf", query_string={"ward": "20311", "status": "RETURNED", **H1})
    assert r.status_code == 200
    text = flat(text_of(r.data))
    count = client.get("/data/count", query_string={"ward": "20311", "status": "RETURNED", **H1}).get_json()["count"]
    assert f"{count:,}".replace(",", ".") + " hồ sơ phù hợp bộ lọc" in text
    assert "Phường: Hòa Thọ Tây (20311)" in text and "Trạng thái: Đã trả kết quả" in text
    drawn = map_text(r.data)
    assert "Trạng thái hồ sơ" in drawn and re.search(rf"Đã trả kết quả \({count}\)", drawn)  # legend with counts
    assert re.search(r"\b\d+ (m|km)\b", drawn) and "Hòa Thọ Tây" in drawn
    assert len(pypdf.PdfReader(io.BytesIO(r.data)).pages) == 1


def test_pages_link_to_their_reports(client, store_path):
    code = a_dossier(store_path)["dossier_code"]
    wards = client.get("/wards", query_string=H1).get_data(as_text=True)
    assert 'href="/reports/review.pdf?from=2022-01-01&amp;to=2022-06-30"' in wards
    assert 'href="/reports/review.pdf?from=2022-01-01&amp;to=2022-06-30&amp;ward=20311"' in wards
    assert f'href="/permits/{code}.pdf"' in client.get(f"/permits/{code}").get_data(as_text=True)
    assert 'href="/reports/map.pdf?ward=20311"' in client.get("/?ward=20311").get_data(as_text=True)


# -- the command line ---------------------------------------------------------------------------

def test_cli_review_prints_the_same_figures(store_path, h1_pdf, tmp_path):
    out = tmp_path / "r.pdf"
    result = CliRunner().invoke(cli, ["--store", store_path, "report", "review", "--from", H1["from"], "--to",
                                      H1["to"], "-o", str(out)])
    assert result.exit_code == 0, result.output
    cli_text, web_text = text_of(out.read_bytes()), text_of(h1_pdf)
    strip = [re.compile(r"Lập lúc [\d/: ]+"), re.compile(r"https?://\S+")]  # generation time, the link's host
    for a, b in zip(cli_text, web_text, strict=True):
        for pattern in strip:
            a, b = pattern.sub("", a), pattern.sub("", b)
        assert a == b


def test_cli_bad_input_and_dossier(store_path, tmp_path):
    runner = CliRunner()
    bad = runner.invoke(cli, ["--store", store_path, "report", "review", "--ward", "99999", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "ward: unknown ward code '99999'" in bad.output
    missing = runner.invoke(cli, ["--store", store_path, "report", "dossier", "NOPE", "-o", str(tmp_path / "x")])
    assert missing.exit_code == 1 and "No dossier 'NOPE'" in missing.output
    rec = a_dossier(store_path, owner_name=any)
    out = tmp_path / "d.pdf"
    ok = runner.invoke(cli, ["--store", store_path, "report", "dossier", rec["dossier_code"], "-o", str(out)])
    assert ok.exit_code == 0, ok.output
    assert rec["owner_name"] in flat(text_of(out.read_bytes()))  # the operator sees everything
    bad_day = runner.invoke(cli, ["--store", store_path, "report", "dossier", rec["dossier_code"], "--as-of",
                                  "2022-13-01", "-o", str(out)])
    assert bad_day.exit_code == 2 and "as_of: '2022-13-01' is not a date" in bad_day.output
    then = runner.invoke(cli, ["--store", store_path, "report", "dossier", rec["dossier_code"], "--as-of",
                               "2021-01-01", "-o", str(out)])
    assert then.exit_code == 0, then.output
    assert "Hồ sơ chưa được tiếp nhận vào ngày 01/01/2021" in flat(text_of(out.read_bytes()))


# -- without the typesetter, and in child processes -------------------------------------------

def test_without_weasyprint_reports_name_it_and_the_app_works(store_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # as if not installed: importing it raises ImportError
    render._weasyprint.cache_clear()
    try:
        client = make_app(store_path).test_client()
        r = client.get("/reports/review.pdf", query_string=H1)
        assert r.status_code == 503 and r.get_json()["code"] == "ReportUnavailable"
        assert "weasyprint" in r.get_json()["description"]
        assert client.get("/wards", query_string=H1).status_code == 200
        assert client.get("/").status_code == 200
    finally:
        render._weasyprint.cache_clear()


@pytest.mark.slow
def test_reports_in_child_processes(store_path):
    app = make_app(store_path, REPORT_WORKERS=1)
    client = app.test_client()
    try:
        r = client.get("/reports/review.pdf", query_string=H1)
        assert r.status_code == 200 and "Hồ sơ tiếp nhận 2.534" in flat(text_of(r.data))
        missing = client.get("/permits/XD-NO-SUCH.pdf")  # the child's refusal comes back as the one error
        assert missing.status_code == 404 and missing.get_json()["code"] == "NotFound"
    finally:
        app.extensions["gisapp_reports"].close()


# -- pure parts -----------------------------------------------------------------------------------

def test_numbers_and_filter_in_words():
    from gisapp.filters import Filter

    assert i18n.fmt(2534) == "2.534" and i18n.fmt(2534, "en") == "2,534"
    assert i18n.pct(0.5449881) == "54,5 %" and i18n.pct(None) == "—"
    words = texts.filter_words(Filter(wards=("20311",), procedures=("NEW_BUILD",)), {"20311": "Hòa Thọ Tây"}, "vi")
    assert words == "Phường: Hòa Thọ Tây (20311); Thủ tục: Cấp mới"
    assert texts.filter_words(Filter(), {}, "en") == "none"


def test_sheet_scale_is_the_largest_that_fits():
    import shapely

    small = shapely.box(0, 0, 20, 20)  # with 15 m around: 50 m, within the 52.5 m of 105 mm at 1:500
    assert maps.sheet_scale(small, 180, 105) == 500
    assert maps.sheet_scale(shapely.box(0, 0, 80, 60), 180, 105) == 1000
    assert maps.sheet_scale(shapely.box(0, 0, 5000, 5000), 180, 105) == maps.SHEET_SCALES[-1]


def test_overdue_list_shows_the_first_rows_and_counts_the_rest(tmp_path):
    from gisapp.domain import Calendar
    from gisapp.reports import review
    from tests.browser_util import sample_frames

    frames, meta = sample_frames(240)
    store = GeoPackageStore(tmp_path / "sample.gpkg", must_exist=False)
    store.write(frames, meta=meta)
    rep = review.build_review(store, review.ReviewQuery(review.Filter()), Calendar())
    assert rep.overdue_total == rep.board.total.overdue > review.LIST_ROWS
    assert len(rep.overdue) == review.LIST_ROWS
    dues = [o["due_on"] for o in rep.overdue]
    assert dues == sorted(dues) and all(o["days_over"] > 0 for o in rep.overdue)
    client = make_app(str(tmp_path / "sample.gpkg")).test_client()
    text = flat(text_of(client.get("/reports/review.pdf").data))
    assert f"Hồ sơ đang xử lý quá hạn ({rep.overdue_total})" in text
    assert f"… và {rep.overdue_total - review.LIST_ROWS} mục khác" in text
    assert rep.overdue[0]["dossier_code"] in text


def test_reports_beyond_the_queue_are_refused_at_once(store_path):
    from gisapp.errors import RequestError
    from gisapp.reports import jobs

    runner = jobs.Runner(workers=0, queue=1)
    job = jobs.Job("dossier", store_path, code=a_dossier(store_path)["dossier_code"])
    assert runner.run(job).startswith(b"%PDF")
    assert runner._slots.acquire(blocking=False)  # a report in the making holds the one slot …
    try:
        with pytest.raises(RequestError) as refused:  # … so the next is refused at once, naming the setting
            runner.run(job)
        assert refused.value.status == 503 and "GISAPP_REPORT_QUEUE" in refused.value.description
    finally:
        runner._slots.release()
    assert runner.run(job).startswith(b"%PDF")


def test_map_print_button_prints_the_view_in_the_browser(chromium, store_path):
    """The map's print button carries the filter and the box in view; the PDF it names is the view."""
    import urllib.parse
    import urllib.request

    from tests.browser_util import live_server, open_page, wait_until

    with live_server(make_app(store_path, BASEMAP="none")) as base:
        rec = open_page(chromium, base)
        try:
            rec.page.goto(base + "/?ward=20311&status=RETURNED")
            wait_until(rec.page, "document.querySelector('[data-testid=permit-count]').textContent.trim() !== ''")
            href = rec.page.evaluate("""() => {
                const a = document.getElementById('print-link');
                a.addEventListener('click', (e) => e.preventDefault());  // stay on the map; keep the address
                a.click();
                return a.href;
            }""")
            assert rec.errors == []
        finally:
            rec.page.context.close()
        url = urllib.parse.urlsplit(href)
        params = urllib.parse.parse_qs(url.query)
        assert url.path == "/reports/map.pdf" and params["ward"] == ["20311"] and params["status"] == ["RETURNED"]
        west, south, east, north = (float(v) for v in params["bbox"][0].split(","))
        assert 107 < west < east < 109 and 15 < south < north < 17
        with urllib.request.urlopen(href, timeout=120) as response:
            body = response.read()
        assert response.headers["Content-Type"] == "application/pdf"
        text = flat(text_of(body))
        assert "Phường: Hòa Thọ Tây (20311)" in text and "Trạng thái: Đã trả kết quả" in text
        assert f"Khung bản đồ (kinh độ, vĩ độ): {west:.5f}, {south:.5f}" in text


@pytest.mark.parametrize("backend", BACKENDS)
def test_review_figures_are_the_same_on_both_backends(backend, store_path, tmp_path, request):
    """The report reads through the one store interface: PostGIS gives the GeoPackage's figures."""
    from gisapp.domain import Calendar
    from gisapp.filters import Filter
    from gisapp.reports import review

    source = GeoPackageStore(store_path)
    store = new_store(backend, tmp_path, request)
    store.write({name: source.read(name) for name in ("wards", "construction_permits", "sidewalk_permits",
                                                      "findings")}, meta=source.meta())
    query = review.ReviewQuery(Filter(date_from=review.dt.date(2022, 1, 1), date_to=review.dt.date(2022, 6, 30)))
    mine, theirs = review.build_review(store, query, Calendar()), review.build_review(source, query, Calendar())
    assert mine.board.total.counts == theirs.board.total.counts and mine.board.total.received == 2534
    assert [r.counts for r in mine.board.rows] == [r.counts for r in theirs.board.rows]
    assert mine.procedures == theirs.procedures and mine.sidewalk == theirs.sidewalk
    assert (mine.clash_total, mine.clashes) == (theirs.clash_total, theirs.clashes)
    assert (mine.overdue_total, mine.overdue) == (theirs.overdue_total, theirs.overdue)
