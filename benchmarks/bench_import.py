"""Benchmark of ``gisapp import`` (:func:`gisapp.importing.prepare.run_import`).

Synthetic office files, generated with numpy:

- ``xlsx``: N construction dossiers as a one-stop export (XLSX written with
  openpyxl's write-only mode: a title line, Vietnamese headers and labels,
  half the dates as dd/mm/yyyy text and half as date cells, 1 % bad rows),
  joined to N parcels from a Shapefile in EPSG:5899 (10-character field
  names, ward names) by ward + map sheet + parcel number;
- ``gpkg``: N sidewalk-use permits as a GeoPackage in EPSG:4326 (so the
  import reprojects every vertex to EPSG:5899).

The parcels lie on a 400-column grid over six 2022 wards (three merged
2025 wards are in the store too, so wards are picked by date); some parcels
straddle a ward boundary.  Each import runs in its own subprocess into a
fresh store holding only the wards, and reports the wall time and CPU
time of the import call and the subprocess's peak memory (``ru_maxrss``);
on a shared machine the CPU time is the steadier figure.  Results are
printed as a table and written as JSON to ``benchmarks/out/``.

Usage::

    python -m benchmarks.bench_import [--n 100000] [--cases xlsx,gpkg] [--data DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parent / "out"
#: Lower-left corner of the synthetic district (EPSG:5899, near Cẩm Lệ).
ORIGIN = (545_000.0, 1_765_000.0)
#: Parcel grid: columns, spacing (m) and parcel size (m).
GRID_COLUMNS = 400
STEP = (12.0, 24.0)
SIZE = (10.0, 20.0)
#: Parcels per map sheet side (a sheet is SHEET × SHEET parcels of one ward).
SHEET = 20
WARDS_2022 = [("20260", "Khuê Trung"), ("20305", "Hòa Phát"), ("20306", "Hòa An"),
              ("20311", "Hòa Thọ Tây"), ("20312", "Hòa Thọ Đông"), ("20314", "Hòa Xuân")]
#: The 2025 wards (codes made up for the benchmark): two columns of the 2022 grid each.
WARDS_2025 = [("99001", "Cẩm Lệ"), ("99002", "An Khê"), ("99003", "Hòa Xuân")]
GOAL_S, GOAL_MB = 30.0, 2048.0
HEADERS = ["STT", "Mã hồ sơ", "Số giấy phép", "Chủ đầu tư", "Địa chỉ công trình", "Phường", "Tờ bản đồ số",
           "Thửa đất số", "Ngày tiếp nhận", "Ngày hẹn trả", "Ngày trả kết quả", "Trạng thái", "Hình thức nộp",
           "Thủ tục", "Loại công trình", "Số tầng", "Diện tích xây dựng (m²)"]


def district(n: int):
    """The area's extent and the wards: (width, height, wards GeoDataFrame)."""
    import geopandas as gpd
    import shapely

    rows = int(np.ceil(n / GRID_COLUMNS))
    width, height = GRID_COLUMNS * STEP[0], rows * STEP[1]
    x = ORIGIN[0] + np.linspace(0, width, 4)
    y = ORIGIN[1] + np.linspace(0, height, 3)
    old = [shapely.box(x[i], y[j], x[i + 1], y[j + 1]) for i in range(3) for j in range(2)]
    new = [shapely.box(x[i], y[0], x[i + 1], y[2]) for i in range(3)]
    records = [{"ward_key": f"{c}-2008-04-01", "ward_code": c, "name": nm, "district": "Cẩm Lệ",
                "valid_from": "2008-04-01", "valid_to": "2025-06-30", "geometry": g}
               for (c, nm), g in zip(WARDS_2022, old)]
    records += [{"ward_key": f"{c}-2025-07-01", "ward_code": c, "name": nm, "district": "",
                 "valid_from": "2025-07-01", "valid_to": None, "geometry": g}
                for (c, nm), g in zip(WARDS_2025, new)]
    return width, height, gpd.GeoDataFrame(records, geometry="geometry", crs="EPSG:5899")


def parcels(n: int):
    """``n`` parcels: a GeoDataFrame with the ward (index into WARDS_2022), sheet and parcel number."""
    import geopandas as gpd
    import shapely

    width, height, wards = district(n)
    k = np.arange(n)
    col, row = k % GRID_COLUMNS, k // GRID_COLUMNS
    x0 = ORIGIN[0] + col * STEP[0] + 1.0
    y0 = ORIGIN[1] + row * STEP[1] + 2.0
    geoms = shapely.box(x0, y0, x0 + SIZE[0], y0 + SIZE[1])
    cx, cy = x0 + SIZE[0] / 2, y0 + SIZE[1] / 2
    wi = np.minimum(((cx - ORIGIN[0]) / width * 3).astype(int), 2)
    wj = np.minimum(((cy - ORIGIN[1]) / height * 2).astype(int), 1)
    ward = wi * 2 + wj
    # sheets and parcel numbers restart in every ward
    local_col = col - np.array([np.floor(i * GRID_COLUMNS / 3) for i in range(3)])[wi].astype(int)
    rows_per_ward = int(np.ceil(np.ceil(n / GRID_COLUMNS) / 2))
    local_row = row - wj * rows_per_ward
    sheets_across = int(np.ceil(GRID_COLUMNS / 3 / SHEET)) + 1
    sheet = (local_row // SHEET) * sheets_across + local_col // SHEET + 1
    number = (local_row % SHEET) * SHEET + local_col % SHEET + 1
    names = np.array([f"Phường {nm}" for _, nm in WARDS_2022], dtype=object)
    frame = gpd.GeoDataFrame({"Phuong": names[ward], "map_sheet_": sheet.astype(str).astype(object),
                              "parcel_no": number.astype(str).astype(object), "dien_tich": SIZE[0] * SIZE[1]},
                             geometry=geoms, crs="EPSG:5899")
    return frame, ward, sheet, number


def write_dossiers_xlsx(path: Path, n: int, seed: int = 0) -> None:
    """``n`` dossiers as an XLSX one-stop export referring to the parcels of :func:`parcels`."""
    import openpyxl

    from gisapp import domain
    rng = np.random.default_rng(seed)
    _, ward, sheet, number = parcels(n)
    pick = rng.permutation(n)
    statuses = [c.vi for c in domain.STATUSES.values()]
    channels = ["Trực tuyến", "Trực tiếp", "Bưu chính", "TRUC TUYEN"]
    procedures = [c.vi for c in domain.PROCEDURES.values()]
    received = np.datetime64("2022-01-03") + rng.integers(0, 3 * 365, n).astype("timedelta64[D]")
    completed = received + rng.integers(5, 40, n).astype("timedelta64[D]")
    bad = rng.random(n) < 0.01
    book = openpyxl.Workbook(write_only=True)
    ws = book.create_sheet("Danh sách hồ sơ")
    ws.append(["DANH SÁCH HỒ SƠ CẤP GIẤY PHÉP XÂY DỰNG (dữ liệu thử nghiệm)"])
    ws.append(HEADERS)
    for i in range(n):
        p = pick[i]
        w = WARDS_2022[ward[p]]
        ward_text = (w[1], f"Phường {w[1]}", w[0])[i % 3]
        day = received[i].astype(dt.date)
        done = completed[i].astype(dt.date)
        status = statuses[i % len(statuses)] if not bad[i] else "Không rõ"
        returned = status in ("Đã trả kết quả", "Đã có kết quả")
        ws.append([
            i + 1, f"000.00.18.H17-{day:%y%m%d}-{i:06d}", f"{i}/GPXD" if returned else None,
            f"Nguyễn Văn {i}", f"{i % 300} Cách Mạng Tháng Tám", ward_text, int(sheet[p]),
            str(number[p]) if not (bad[i] and i % 2) else "99999",
            dt.datetime(day.year, day.month, day.day) if i % 2 else f"{day:%d/%m/%Y}", None,
            (f"{done:%d/%m/%Y}" if returned else None), status, channels[i % 4], procedures[i % len(procedures)],
            "Nhà ở riêng lẻ" if i % 10 else "Công trình khác", str(1 + i % 5), f"{60 + i % 90},5",
        ])
    book.save(path)


def write_sidewalk_gpkg(path: Path, n: int, seed: int = 1) -> None:
    """``n`` sidewalk-use permits (1.5 × 8 m strips in front of parcels) as a GeoPackage in EPSG:4326."""
    import geopandas as gpd
    import pandas as pd
    import pyogrio
    import shapely

    rng = np.random.default_rng(seed)
    frame, _, _, _ = parcels(n)
    x0, y0 = shapely.get_coordinates(shapely.envelope(frame.geometry.values))[::5].T
    strips = shapely.box(x0 + 1, y0 - 1.8, x0 + 9, y0 - 0.3)
    start = np.datetime64("2022-01-03") + rng.integers(0, 3 * 365, n).astype("timedelta64[D]")
    purposes = ["Tập kết vật liệu xây dựng", "Kinh doanh, buôn bán", "Trông giữ xe", "EVENT", "việc cưới, việc tang"]
    data = gpd.GeoDataFrame({
        "permit_no": np.char.add("VH-", np.arange(n).astype(str)).astype(object),
        "purpose": np.array(purposes, dtype=object)[np.arange(n) % 5],
        "status": np.array(["Đã tiếp nhận", "Đã trả kết quả", "Đang xử lý"], dtype=object)[np.arange(n) % 3],
        "channel": np.array(["Trực tuyến", "Trực tiếp"], dtype=object)[np.arange(n) % 2],
        "applicant_name": np.char.add("Trần Thị ", np.arange(n).astype(str)).astype(object),
        "start_on": pd.to_datetime(start), "end_on": pd.to_datetime(start + rng.integers(0, 60, n)),
        "sidewalk_width_m": rng.uniform(3, 6, n).round(1), "used_width_m": 1.5,
    }, geometry=strips, crs="EPSG:5899").to_crs("EPSG:4326")
    pyogrio.write_dataframe(data, path, layer="giay_phep_via_he", driver="GPKG")


def generate(data: Path, n: int) -> dict[str, float]:
    """Write the benchmark files into ``data``; seconds per file."""
    import pyogrio

    data.mkdir(parents=True, exist_ok=True)
    timings = {}
    t = time.perf_counter()
    frame, _, _, _ = parcels(n)
    pyogrio.write_dataframe(frame, data / "parcels.shp", encoding="UTF-8")
    timings["parcels.shp"] = time.perf_counter() - t
    t = time.perf_counter()
    write_dossiers_xlsx(data / "dossiers.xlsx", n)
    timings["dossiers.xlsx"] = time.perf_counter() - t
    t = time.perf_counter()
    write_sidewalk_gpkg(data / "sidewalk.gpkg", n)
    timings["sidewalk.gpkg"] = time.perf_counter() - t
    return timings


CASES = {
    "xlsx": ("construction_permits", "dossiers.xlsx", "parcels.shp"),
    "gpkg": ("sidewalk_permits", "sidewalk.gpkg", None),
}


def run_case(case: str, data: Path, n: int) -> dict:
    """One import into a fresh store holding only the wards (run in a subprocess)."""
    from gisapp.domain import Calendar
    from gisapp.importing.prepare import run_import
    from gisapp.store.gpkg import GeoPackageStore

    layer, name, parcel_file = CASES[case]
    store_path = data / f"store-{case}.gpkg"
    store_path.unlink(missing_ok=True)
    store = GeoPackageStore(store_path, must_exist=False)
    store.write({"wards": district(n)[2]})
    started, cpu = time.perf_counter(), time.process_time()
    report = run_import(store, layer, data / name, parcels=data / parcel_file if parcel_file else None,
                        calendar=Calendar())
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "case": case, "layer": layer, "file": name, "parcels": parcel_file, "n": n,
        "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "read": report.read, "accepted": report.accepted, "rejected": report.rejected,
        "repaired": report.repaired, "by_reason": report.rejected_by_reason, "written": report.written,
        "stored": store.count(layer), "warnings": list(report.warnings),
    }


def _run_in_subprocess(case: str, data: Path, n: int) -> dict:
    """:func:`run_case` in a fresh interpreter (its own peak memory)."""
    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "benchmarks.bench_import", "--worker", case, "--data", str(data), "--n", str(n)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=env, check=False)
    if done.returncode != 0:
        return {"case": case, "n": n, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def format_table(rows: list[dict]) -> str:
    """The results as a plain-text table."""
    head = (f"{'case':<5} {'layer':<21} {'n':>8} {'wall s':>7} {'cpu s':>6} {'peak MB':>8} {'accepted':>9} "
            f"{'rejected':>9}  goal")
    lines = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['case']:<5} error: {r['error']}")
            continue
        ok = "met" if r["seconds"] < GOAL_S and r["peak_rss_mb"] < GOAL_MB else "MISSED"
        lines.append(f"{r['case']:<5} {r['layer']:<21} {r['n']:>8} {r['seconds']:>7.2f} {r['cpu_seconds']:>6.2f} "
                     f"{r['peak_rss_mb']:>8.0f} "
                     f"{r['accepted']:>9} {r['rejected']:>9}  {ok} (<{GOAL_S:.0f} s, <{GOAL_MB:.0f} MB)")
    return "\n".join(lines)


def main(argv=None) -> None:
    """Generate the files, run every case in its own process, print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="dossiers, parcels and features per file")
    parser.add_argument("--cases", default="xlsx,gpkg", help="comma-separated: xlsx, gpkg")
    parser.add_argument("--data", type=Path, help="directory for the generated files (default: a temporary one)")
    parser.add_argument("--worker", metavar="CASE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(run_case(args.worker, args.data, args.n), ensure_ascii=False))
        return
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    with tempfile.TemporaryDirectory(prefix="bench_import_") as tmp:
        data = args.data or Path(tmp)
        if not (data / "dossiers.xlsx").exists() or args.data is None:
            generated = generate(data, args.n)
            print("generated " + ", ".join(f"{k} in {v:.1f} s" for k, v in generated.items()), flush=True)
        rows = [_run_in_subprocess(case, data, args.n) for case in cases]
    print(format_table(rows))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    out = OUT_DIR / f"bench_import_{args.n}.json"
    out.write_text(json.dumps({"machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                           "platform": platform.platform()},
                               "date": dt.datetime.now().isoformat(timespec="seconds"), "results": rows},
                              ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"results written to {out}")


if __name__ == "__main__":
    main()
