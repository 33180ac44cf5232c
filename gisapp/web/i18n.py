"""Interface strings in Vietnamese and English.

Labels of codes and fields come from :mod:`gisapp.domain` and
:mod:`gisapp.schema`; this module holds only the words of the interface
itself (buttons, headings, messages).  ``translator(lang)`` returns a
function ``t(key, **values)`` for templates.
"""

from __future__ import annotations

import re

#: key → (Vietnamese, English)
STRINGS: dict[str, tuple[str, str]] = {
    "app_name": ("Quản lý cấp phép xây dựng", "Construction permits"),
    "district": ("Quận Cẩm Lệ, Đà Nẵng", "Cẩm Lệ district, Đà Nẵng"),
    "nav_map": ("Bản đồ", "Map"),
    "nav_wards": ("Thống kê theo phường", "Ward dashboard"),
    "nav_api": ("API", "API"),
    "switch_lang": ("English", "Tiếng Việt"),
    "basemap": ("Bản đồ nền", "Basemap"),
    "filters": ("Bộ lọc", "Filters"),
    "ward": ("Phường", "Ward"),
    "from": ("Tiếp nhận từ ngày", "Received from"),
    "to": ("đến ngày", "to"),
    "q": ("Tìm kiếm", "Search"),
    "q_placeholder": ("Mã hồ sơ, số giấy phép, địa chỉ, đường", "Dossier code, permit no., address, street"),
    "apply": ("Lọc", "Apply"),
    "clear": ("Xóa bộ lọc", "Clear"),
    "any": ("(tất cả)", "(all)"),
    "multi_hint": ("Giữ Ctrl để chọn nhiều", "Hold Ctrl to pick several"),
    "matching": ("hồ sơ phù hợp", "matching dossiers"),
    "of_total": ("trên tổng số", "of"),
    "zoom_results": ("Phóng tới kết quả", "Zoom to results"),
    "export": ("Xuất GeoJSON", "Export GeoJSON"),
    "dashboard_link": ("Thống kê theo phường", "Ward dashboard"),
    "ignored": ("Bộ lọc bị bỏ qua", "Ignored filters"),
    "ignored_suffix": ("giá trị này đã bị bỏ qua", "this value was ignored"),
    "loading": ("Đang tải…", "Loading…"),
    "zoom_in": ("Phóng to để xem từng thửa", "Zoom in to see parcels"),
    "aggregated": ("Số hồ sơ theo phường — phóng to để xem từng thửa",
                   "Dossiers per ward — zoom in to see parcels"),
    "load_error": ("Không tải được dữ liệu", "Could not load data"),
    "legend": ("Chú giải", "Legend"),
    "legend_status": ("Trạng thái hồ sơ", "Dossier status"),
    "overdue_open": ("Hồ sơ đang xử lý quá hạn", "Open dossier past its due date"),
    "sidewalk_layer": ("Vỉa hè cấp phép sử dụng tạm thời", "Sidewalk-use permits"),
    "findings_layer": ("Phát hiện chồng lấn", "Overlap findings"),
    "wards_2022": ("Ranh giới phường 2022 (gần đúng)", "Ward boundaries 2022 (approximate)"),
    "wards_2025": ("Ranh giới phường từ 01/7/2025", "Ward boundaries from 1 Jul 2025"),
    "permits_layer": ("Hồ sơ cấp phép xây dựng", "Construction permit dossiers"),
    "attribution": ("Ranh giới: © OpenStreetMap contributors (ODbL); ranh giới phường 2022 là gần đúng",
                    "Boundaries: © OpenStreetMap contributors (ODbL); 2022 ward boundaries are approximate"),
    "zoom_to_ward": ("Phóng tới phường…", "Zoom to ward…"),
    "fullscreen": ("Toàn màn hình", "Full screen"),
    "fullscreen_exit": ("Thoát toàn màn hình", "Exit full screen"),
    "open_permit": ("Xem chi tiết hồ sơ", "Open the dossier page"),
    "linked_sidewalk": ("Giấy phép vỉa hè liên kết", "Linked sidewalk permits"),
    "nearby_sidewalk": ("Giấy phép vỉa hè trong phạm vi 20 m", "Sidewalk permits within 20 m"),
    "none": ("Không có", "None"),
    "timeliness": ("Tiến độ", "Timeliness"),
    "day_unit": ("ngày", "days"),
    # dashboard
    "wards_title": ("Thống kê hồ sơ cấp phép xây dựng theo phường",
                    "Construction permit dossiers per ward"),
    "received": ("Tiếp nhận", "Received"),
    "resolved": ("Đã giải quyết", "Resolved"),
    "by_status": ("Theo trạng thái", "By status"),
    "online_share": ("Tỷ lệ trực tuyến", "Online share"),
    "on_time_share": ("Tỷ lệ đúng hạn", "On-time share"),
    "open": ("Đang xử lý", "Open"),
    "overdue": ("Quá hạn", "Overdue"),
    "late": ("Trễ hạn", "Late"),
    "sidewalk_permits": ("Giấy phép vỉa hè", "Sidewalk permits"),
    "findings": ("Phát hiện", "Findings"),
    "district_total": ("Toàn quận", "District total"),
    "per_month": ("Hồ sơ tiếp nhận và giải quyết theo tháng", "Dossiers received and resolved per month"),
    "choropleth": ("Số hồ sơ tiếp nhận theo phường", "Dossiers received per ward"),
    "as_of": ("Số liệu tính đến ngày", "Data as of"),
    "show_on_map": ("Xem trên bản đồ", "Show on the map"),
    "no_data": ("Chưa có dữ liệu", "No data"),
    "other_ward": ("Phường khác", "Other ward"),
    # permit page
    "permit_title": ("Hồ sơ", "Dossier"),
    "fields": ("Thông tin hồ sơ", "Dossier details"),
    "back_to_map": ("Xem trên bản đồ", "Show on the map"),
    "its_findings": ("Phát hiện liên quan", "Findings about this dossier"),
    "distance": ("Khoảng cách (m)", "Distance (m)"),
    "period": ("Thời gian", "Period"),
    "neighbours": ("Thửa lân cận", "Neighbouring parcels"),
    "this_parcel": ("Thửa của hồ sơ này", "This dossier's parcel"),
    "sidewalk_title": ("Giấy phép sử dụng tạm thời vỉa hè", "Sidewalk-use permit"),
    "sidewalk_fields": ("Thông tin giấy phép", "Permit details"),
    "sidewalk_findings": ("Phát hiện liên quan", "Findings about this permit"),
    "open_sidewalk": ("Xem chi tiết giấy phép", "Open the permit page"),
    "no_geometry": ("Giấy phép chưa có vị trí trên bản đồ", "The permit has no location on the map"),
    # errors
    "back_home": ("Về bản đồ", "Back to the map"),
    "not_found_permit": ("Không tìm thấy hồ sơ {code} (mã hồ sơ hoặc số giấy phép vỉa hè)",
                         "No dossier with code {code}, nor a sidewalk permit with that number"),
    # sign-in, administration and upload pages
    'login_bad': ('Sai tên đăng nhập hoặc mật khẩu.', 'Wrong user name or password.'),
    'login_throttled': ('Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau 15 phút.',
                        'Too many failed sign-ins. Please try again in 15 minutes.'),
    'ui_accepted': ('Hợp lệ', 'Accepted'),
    'ui_accounts': ('Tài khoản', 'Accounts'),
    'ui_accounts_are_managed_with': ('Quản lý tài khoản bằng lệnh', 'Accounts are managed with'),
    'ui_action': ('Thao tác', 'Action'),
    'ui_add_and_update_by_key': ('Thêm mới và cập nhật theo mã', 'Add and update by key'),
    'ui_admin': ('Quản trị', 'Admin'),
    'ui_administration': ('Quản trị', 'Administration'),
    'ui_audit_log': ('Nhật ký thao tác', 'Audit log'),
    'ui_back_to_the_map': ('Về bản đồ', 'Back to the map'),
    'ui_check': ('Kiểm tra', 'Check'),
    'ui_check_before_import': ('Kết quả kiểm tra trước khi nhập', 'Check before import'),
    'ui_confirm_the_import': ('Xác nhận nhập dữ liệu', 'Confirm the import'),
    'ui_crs_if_the_file_has_none': ('Hệ tọa độ nếu tệp không có', 'CRS if the file has none'),
    'ui_detail': ('Chi tiết', 'Detail'),
    'ui_download_the_rejected_rows_csv': ('Tải các dòng bị loại (CSV)', 'Download the rejected rows (CSV)'),
    'ui_file': ('Tệp', 'File'),
    'ui_import_report': ('Báo cáo nhập dữ liệu', 'Import report'),
    'ui_imported': ('Đã nhập dữ liệu', 'Imported'),
    'ui_largest_file': ('Dung lượng tối đa:', 'Largest file:'),
    'ui_layer': ('Lớp dữ liệu', 'Layer'),
    'ui_mode': ('Cách nhập', 'Mode'),
    'ui_of_which_repaired': ('trong đó đã sửa hình học', 'of which repaired'),
    'ui_parcels_for_a_table_of_dossiers': ('Thửa đất (khi nhập bảng hồ sơ)', 'Parcels (for a table of dossiers)'),
    'ui_password': ('Mật khẩu', 'Password'),
    'ui_rejected': ('Bị loại', 'Rejected'),
    'ui_replace_the_whole_layer': ('Thay thế toàn bộ lớp', 'Replace the whole layer'),
    'ui_role': ('Vai trò', 'Role'),
    'ui_rows': ('Số dòng', 'Rows'),
    'ui_rows_read': ('Số dòng đọc', 'Rows read'),
    'ui_shapefile_as_a_zip_geopackage_geojson_cs': ('Shapefile (nén .zip), GeoPackage, GeoJSON, CSV hoặc XLSX. Tệp được kiểm tra trước; dữ liệu chỉ thay đổi khi bạn xác nhận.', 'Shapefile (as a .zip), GeoPackage, GeoJSON, CSV or XLSX. The file is checked first; nothing changes until you confirm.'),
    'ui_sessions': ('Phiên đăng nhập', 'Sessions'),
    'ui_sheet_xlsx': ('Trang tính (XLSX)', 'Sheet (XLSX)'),
    'ui_sign_in': ('Đăng nhập', 'Sign in'),
    'ui_sign_out': ('Đăng xuất', 'Sign out'),
    'ui_sign_out_everywhere': ('Đăng xuất mọi nơi', 'Sign out everywhere'),
    'ui_staff_sign_in': ('Đăng nhập', 'Staff sign-in'),
    'ui_start_again': ('Chọn tệp khác', 'Start again'),
    'ui_upload': ('Nhập dữ liệu', 'Upload'),
    'ui_upload_data': ('Nhập dữ liệu từ tệp', 'Upload data'),
    'ui_user': ('Người dùng', 'User'),
    'ui_user_name': ('Tên đăng nhập', 'User name'),
    'ui_warnings': ('Cảnh báo', 'Warnings'),
    'ui_when_utc': ('Thời điểm (UTC)', 'When (UTC)'),
    'ui_who': ('Người thực hiện', 'Who'),
}


def text(key: str, lang: str = "vi", **values) -> str:
    """The string ``key`` in ``lang``, with ``{name}`` placeholders filled in."""
    vi, en = STRINGS[key]
    out = en if lang == "en" else vi
    return out.format(**values) if values else out


def translator(lang: str):
    """A function ``t(key, **values)`` bound to ``lang``, for templates."""

    def t(key: str, **values) -> str:
        return text(key, lang, **values)

    return t


def bundle(lang: str, keys=None) -> dict[str, str]:
    """The strings ``keys`` (default: all) in ``lang``, for the map's JavaScript."""
    return {k: text(k, lang) for k in (keys or STRINGS)}


#: Filter messages (from :mod:`gisapp.filters`, in English) → Vietnamese, by pattern.
_FILTER_MESSAGES_VI = (
    (re.compile(r"unknown ward code '(.*)'$", re.S), "không có phường mã '{0}'"),
    (re.compile(r"unknown (\w+) code '(.*)'$", re.S), "mã '{1}' không có trong danh mục"),
    (re.compile(r"'(.*)' is not a date \(YYYY-MM-DD\)$", re.S), "'{0}' không phải là ngày (YYYY-MM-DD)"),
    (re.compile(r"'from' is after 'to'; the date range was ignored$"),
     "ngày bắt đầu sau ngày kết thúc; khoảng ngày bị bỏ qua"),
    (re.compile(r"search text is longer than (\d+) characters$"), "từ khóa tìm kiếm dài hơn {0} ký tự"),
)


def filter_message(message: str, lang: str = "vi") -> str:
    """A filter warning in ``lang``: Vietnamese for the known messages, the English text otherwise."""
    if lang == "en":
        return message
    for pattern, vi in _FILTER_MESSAGES_VI:
        match = pattern.match(message)
        if match:
            return vi.format(*match.groups())
    return message
