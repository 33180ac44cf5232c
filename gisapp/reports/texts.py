"""The reports' words (Vietnamese and English) and how they print numbers, dates and a filter.

Words the dashboard also uses come from :mod:`gisapp.i18n` (the same "Tiếp nhận" on the page and on
paper); these are the reports' own.  Numbers print as the pages print them (``2.534``, ``54,5 %`` in
Vietnamese).
"""

from __future__ import annotations

import datetime as dt

from gisapp import domain, i18n
from gisapp.filters import Filter
from gisapp.i18n import fmt
from gisapp.schema import CONSTRUCTION_PERMITS, FINDINGS, SIDEWALK_PERMITS

#: key → (Vietnamese, English)
REPORT_STRINGS: dict[str, tuple[str, str]] = {
    "office": ("UBND quận Cẩm Lệ — Phòng Quản lý đô thị", "Cẩm Lệ district — Urban Management Office"),
    "review_title": ("Báo cáo sơ kết công tác cấp phép xây dựng",
                     "Review report: construction permits"),
    "period": ("Kỳ báo cáo", "Period"),
    "period_text": ("từ ngày {a} đến ngày {b}", "from {a} to {b}"),
    "period_open_end": ("từ ngày {a}", "from {a}"),
    "period_open_start": ("đến ngày {b}", "until {b}"),
    "period_all": ("toàn bộ dữ liệu", "all the data"),
    "scope": ("Phạm vi", "Scope"),
    "sidewalk": ("Vỉa hè", "Sidewalk"),
    "applications": ("Đơn xin sử dụng tạm thời vỉa hè mới đăng ký — kết quả kiểm tra",
                     "New sidewalk-use applications — the occupancy check"),
    "not_checked": ("Chưa kiểm tra được (thiếu vị trí hoặc thời gian)", "Not checked (no place or no dates)"),
    "district_scope": ("Toàn quận", "Whole district"),
    "ward_scope": ("Phường {names}", "Ward {names}"),
    "as_of": ("Số liệu tính đến ngày", "Data as of"),
    "active_on": ("Đang có hiệu lực ngày {day}", "Active on {day}"),
    "generated": ("Lập lúc", "Generated"),
    "filter": ("Bộ lọc", "Filter"),
    "filter_none": ("không lọc", "none"),
    "link": ("Xem trên ứng dụng", "Open in the app"),
    "headline": ("Kết quả chính", "Headline figures"),
    "received": ("Hồ sơ tiếp nhận", "Dossiers received"),
    "resolved": ("Hồ sơ đã giải quyết", "Dossiers resolved"),
    "on_time": ("Giải quyết đúng hạn, trước hạn", "Resolved on time or early"),
    "late": ("Giải quyết trễ hạn", "Resolved late"),
    "open": ("Đang xử lý", "Still open"),
    "overdue": ("Đang xử lý quá hạn", "Open past the due date"),
    "online": ("Nộp trực tuyến", "Filed online"),
    "online_of": ("{n} hồ sơ, tỷ lệ {p}", "{n} dossiers, {p}"),
    "no_late": ("Không có hồ sơ trễ hẹn.", "No dossier was resolved late."),
    "per_procedure": ("Theo thủ tục", "By procedure"),
    "procedure": ("Thủ tục", "Procedure"),
    "no_data": ("Không có hồ sơ nào trong kỳ báo cáo với bộ lọc này.",
                "No dossier in this period with this filter."),
    "per_ward": ("Theo phường", "By ward"),
    "per_month": ("Hồ sơ tiếp nhận và giải quyết theo tháng", "Dossiers received and resolved per month"),
    "month": ("Tháng", "Month"),
    "map_received": ("Bản đồ hồ sơ tiếp nhận theo phường", "Dossiers received per ward"),
    "legend_received": ("Hồ sơ tiếp nhận", "Dossiers received"),
    "sidewalk_section": ("Sử dụng tạm thời vỉa hè", "Temporary use of the sidewalk"),
    "sidewalk_intro": ("Giấy phép vỉa hè và phát hiện chồng lấn trong kỳ; công trình cần dùng vỉa hè (đã gộp "
                       "thủ tục hoặc đề xuất gộp) trên tổng số hồ sơ xây dựng của kỳ — cơ sở cho việc gộp thủ "
                       "tục cấp phép xây dựng và cấp phép sử dụng vỉa hè.",
                       "Sidewalk permits and overlap findings of the period; construction works that needed the "
                       "sidewalk (merged procedure or merge candidate) out of the period's construction "
                       "dossiers — the evidence for merging the two permits."),
    "needing": ("Công trình cần vỉa hè", "Works needing the sidewalk"),
    "needing_share": ("Tỷ lệ", "Share"),
    "dossiers": ("Hồ sơ XD", "Dossiers"),
    "map_findings": ("Bản đồ phát hiện chồng lấn", "Overlap findings"),
    "legend_findings": ("Loại phát hiện", "Finding kind"),
    "overdue_list": ("Hồ sơ đang xử lý quá hạn", "Open dossiers past their due date"),
    "clash_list": ("Chồng lấn vỉa hè (cùng nơi, cùng thời gian)", "Sidewalk clashes (same place, same time)"),
    "none_listed": ("Không có.", "None."),
    "and_more": ("… và {n} mục khác (xem trên ứng dụng).", "… and {n} more (see the app)."),
    "days_over": ("Số ngày quá hạn", "Days over"),
    "dossier_code": ("Mã hồ sơ", "Dossier"),
    "address": ("Địa chỉ", "Address"),
    "received_on": ("Ngày tiếp nhận", "Received"),
    "due_on": ("Ngày hẹn trả", "Due"),
    "pair": ("Giấy phép", "Permits"),
    "overlap": ("Thời gian chồng lấn", "Overlap"),
    "area": ("Diện tích (m²)", "Area (m²)"),
    "page": ("Trang", "Page"),
    "of": ("/", "of"),
    "total": ("Tổng", "Total"),
    "ward": ("Phường", "Ward"),
    "sheet_title": ("Phiếu thông tin hồ sơ cấp phép xây dựng", "Construction-permit dossier sheet"),
    "fields": ("Thông tin hồ sơ", "Dossier details"),
    "deadline": ("Thời hạn giải quyết", "Deadline"),
    "timeliness": ("Tình trạng", "Timeliness"),
    "parcel_map": ("Vị trí thửa đất", "The parcel"),
    "scale": ("Tỷ lệ", "Scale"),
    "legend": ("Chú giải", "Legend"),
    "the_parcel": ("Thửa đất của hồ sơ", "This dossier's parcel"),
    "neighbours": ("Thửa lân cận", "Neighbouring parcels"),
    "linked_permits": ("Giấy phép vỉa hè của hồ sơ", "Its sidewalk permits"),
    "nearby_permits": ("Giấy phép vỉa hè gần đó", "Sidewalk permits nearby"),
    "findings_outline": ("Phát hiện chồng lấn", "Overlap findings"),
    "personal_hidden": ("Thông tin cá nhân chỉ hiển thị cho cán bộ đã đăng nhập.",
                        "Personal data is shown to signed-in staff only."),
    "findings": ("Phát hiện liên quan", "Findings"),
    "map_title": ("Bản đồ hồ sơ cấp phép xây dựng", "Construction-permit dossiers"),
    "matching": ("hồ sơ phù hợp bộ lọc", "dossiers match the filter"),
    "legend_status": ("Trạng thái hồ sơ", "Dossier status"),
    "too_many_drawn": ("Bản đồ vẽ {n} hồ sơ đầu tiên (theo mã hồ sơ) trên tổng số {total}.",
                       "The map draws the first {n} of {total} dossiers (by code)."),
    "attribution_osm": ("Ranh giới phường © OpenStreetMap contributors, ODbL 1.0",
                        "Ward boundaries © OpenStreetMap contributors, ODbL 1.0"),
    "source": ("Nguồn dữ liệu", "Data source"),
    "bbox": ("Khung bản đồ (kinh độ, vĩ độ)", "Map box (lon, lat)"),
}


def translator(lang: str):
    """``t(key, **values)``: the report's own words, else the interface's (:mod:`gisapp.i18n`)."""
    index = 1 if lang == "en" else 0

    def t(key: str, **values) -> str:
        if key in REPORT_STRINGS:
            text = REPORT_STRINGS[key][index]
            return text.format(**values) if values else text
        return i18n.text(key, lang, **values)

    return t


def period_words(date_from: dt.date | None, date_to: dt.date | None, lang: str) -> str:
    """The period in words: ``từ ngày 01/01/2022 đến ngày 30/06/2022``."""
    t = translator(lang)
    a, b = fmt(date_from, lang), fmt(date_to, lang)
    if date_from and date_to:
        return t("period_text", a=a, b=b)
    if date_from:
        return t("period_open_end", a=a)
    if date_to:
        return t("period_open_start", b=b)
    return t("period_all")


def filter_words(flt: Filter, ward_names: dict[str, str], lang: str) -> str:
    """Every restriction of ``flt`` in words, with the labels of its codes (``Phường: Hòa Thọ Tây; …``)."""
    t = translator(lang)
    parts = []
    if flt.wards:
        parts.append(f"{t('ward')}: " + ", ".join(f"{ward_names.get(c, c)} ({c})" for c in flt.wards))
    for attr, field, layer in (("statuses", "status", CONSTRUCTION_PERMITS),
                               ("procedures", "procedure", CONSTRUCTION_PERMITS),
                               ("channels", "channel", CONSTRUCTION_PERMITS),
                               ("purposes", "purpose", SIDEWALK_PERMITS), ("kinds", "kind", FINDINGS)):
        codes = getattr(flt, attr)
        if codes:
            parts.append(f"{layer.field(field).label(lang)}: " + ", ".join(domain.label(field, c, lang) for c in codes))
    if flt.date_from or flt.date_to:
        parts.append(f"{t('received_on')}: {period_words(flt.date_from, flt.date_to, lang)}")
    if flt.day:
        parts.append(t("active_on", day=i18n.fmt(flt.day, lang)))
    if flt.as_of:
        parts.append(f"{t('as_of')} {i18n.fmt(flt.as_of, lang)}")
    if flt.q:
        parts.append(f"{i18n.text('q', lang)}: “{flt.q}”")
    if flt.bbox:
        west, south, east, north = flt.bbox
        parts.append(f"{t('bbox')}: {west:.5f}, {south:.5f} – {east:.5f}, {north:.5f}")
    return "; ".join(parts) if parts else t("filter_none")
