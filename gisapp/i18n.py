"""Interface strings in Vietnamese and English.

Labels of codes and fields come from :mod:`gisapp.domain` and
:mod:`gisapp.schema`; this module holds only the words of the interface
itself (buttons, headings, messages).  ``translator(lang)`` returns a
function ``t(key, **values)`` for templates.
"""

from __future__ import annotations

import datetime as dt
import re

#: key → (Vietnamese, English)
STRINGS: dict[str, tuple[str, str]] = {
    "app_name": ("Quản lý cấp phép xây dựng", "Construction permits"),
    "district": ("Quận Cẩm Lệ, Đà Nẵng", "Cẩm Lệ district, Đà Nẵng"),
    "nav_map": ("Bản đồ", "Map"),
    "nav_wards": ("Thống kê theo phường", "Ward dashboard"),
    "nav_api": ("API", "API"),
    # -- field work (issue 18): inspections, "here, today", the phone layout --
    "inspections": ("Kiểm tra hiện trường", "Inspections"),
    "inspection": ("Biên bản kiểm tra", "Inspection"),
    "record_inspection": ("Ghi biên bản kiểm tra", "Record an inspection"),
    "record_unpermitted": ("Ghi chiếm dụng không phép", "Record an unpermitted occupancy"),
    "record_follow_up": ("Kiểm tra lại", "Record a follow-up"),
    "inspection_type": ("Loại kiểm tra", "Type"),
    "outcome": ("Kết quả", "Outcome"),
    "notes": ("Ghi chú (không ghi họ tên)", "Notes (no personal names)"),
    "inspected_at": ("Thời điểm", "Time"),
    "inspector": ("Cán bộ kiểm tra", "Inspector"),
    "position": ("Vị trí", "Position"),
    "photos": ("Ảnh", "Photos"),
    "photos_hint": ("Tối đa {n} ảnh, mỗi ảnh tối đa {mb} MB", "Up to {n} photos of at most {mb} MB each"),
    "target": ("Giấy phép / hồ sơ", "Permit / dossier"),
    "no_target": ("(không có giấy phép)", "(no permit)"),
    "occupancy_size": ("Kích thước chiếm dụng (m): rộng × dài", "Occupied size (m): width × length"),
    "occupancy_draw": ("hoặc vẽ trên bản đồ", "or draw it on the map"),
    "draw_hint": ("chạm từng góc của khu vực bị chiếm dụng (ít nhất 3 góc)", "tap each corner of the occupied "
                  "area (3 at least)"),
    "draw_clear": ("Vẽ lại", "Clear drawing"),
    "use_my_position": ("Lấy vị trí của tôi", "Use my position"),
    "save": ("Lưu", "Save"),
    "no_inspections": ("Chưa có biên bản kiểm tra", "No inspections yet"),
    "unpermitted_open": ("Đang chiếm dụng", "Still occupied"),
    "unpermitted_closed": ("Đã giải tỏa", "Cleared"),
    "locate_me": ("Vị trí của tôi", "Locate me"),
    "geo_denied": ("Không được phép dùng vị trí: hãy cho phép trình duyệt truy cập vị trí (chỉ hoạt động qua HTTPS "
                   "hoặc localhost).", "Location refused: allow this site to use your location (works over HTTPS "
                   "or localhost only)."),
    "geo_unavailable": ("Không xác định được vị trí của thiết bị.", "The device's position is not available."),
    "here_title": ("Được phép tại đây", "Permitted here"),
    "here_hint": ("Chạm giữ (hoặc nhấn đúp) lên bản đồ để xem giấy phép tại chỗ đó", "Long-press (or double-click) "
                  "the map to see what is permitted at that spot"),
    "here_none": ("Không có giấy phép nào còn hiệu lực tại chỗ này trong ngày", "Nothing is permitted at this spot "
                  "on this day"),
    "here_works": ("Công trình xây dựng", "Construction works"),
    "here_sidewalk": ("Giấy phép vỉa hè", "Sidewalk permits"),
    "until": ("đến", "until"),
    "menu": ("Bộ lọc và lớp", "Filters and layers"),
    "close": ("Đóng", "Close"),
    "unpermitted": ("Chiếm dụng không phép", "Unpermitted"),
    "blds_inspections": ("Xuất BLDS kiểm tra (CSV)", "BLDS inspections (CSV)"),
    "switch_lang": ("English", "Tiếng Việt"),
    "basemap": ("Bản đồ nền", "Basemap"),
    "filters": ("Bộ lọc", "Filters"),
    "ward": ("Phường", "Ward"),
    "from": ("Tiếp nhận từ ngày", "Received from"),
    "to": ("đến ngày", "to"),
    "day": ("Ngày", "Day"),
    "day_slider": ("Theo ngày: công trình và vỉa hè đang sử dụng", "By day: works and sidewalk use in progress"),
    "day_hint": ("Hồ sơ xây dựng: thời gian thi công 12 tháng từ ngày cấp phép (hoặc tiếp nhận); giấy phép vỉa hè: "
                 "từ ngày đến ngày", "Dossiers: 12 months of works from issue (or receipt); sidewalk permits: "
                 "start to end"),
    "day_play": ("Phát", "Play"),
    "day_pause": ("Tạm dừng", "Pause"),
    "day_back": ("Lùi một bước", "Step back"),
    "day_forward": ("Tới một bước", "Step forward"),
    "day_step": ("Bước", "Step"),
    "day_step_1": ("1 ngày", "1 day"),
    "day_step_7": ("1 tuần", "1 week"),
    "day_step_30": ("30 ngày", "30 days"),
    "day_all": ("Mọi ngày", "All days"),
    "day_summary": ("{sidewalk} giấy phép vỉa hè đang sử dụng, {findings} phát hiện chồng lấn",
                    "{sidewalk} sidewalk permits in use, {findings} overlap findings"),
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
    "print_map": ("In bản đồ (PDF)", "Print the map (PDF)"),
    "print_review": ("Báo cáo sơ kết (PDF)", "Review report (PDF)"),
    "print_sheet": ("In phiếu hồ sơ (PDF)", "Print the dossier sheet (PDF)"),
    "ignored": ("Bộ lọc bị bỏ qua", "Ignored filters"),
    "ignored_suffix": ("giá trị này đã bị bỏ qua", "this value was ignored"),
    "loading": ("Đang tải…", "Loading…"),
    "zoom_in": ("Phóng to để xem từng thửa", "Zoom in to see parcels"),
    "aggregated": ("Số hồ sơ theo phường — phóng to để xem từng thửa",
                   "Dossiers per ward — zoom in to see parcels"),
    "load_error": ("Không tải được dữ liệu", "Could not load data"),
    "tile_error": ("Không tải được ô bản đồ", "Could not load map tiles"),
    "map_close": ("Đóng", "Close"),
    "legend": ("Chú giải", "Legend"),
    "legend_status": ("Trạng thái hồ sơ", "Dossier status"),
    "overdue_open": ("Hồ sơ đang xử lý quá hạn", "Open dossier past its due date"),
    "sidewalk_layer": ("Vỉa hè cấp phép sử dụng tạm thời", "Sidewalk-use permits"),
    "findings_layer": ("Phát hiện chồng lấn", "Overlap findings"),
    "sidewalks_layer": ("Vỉa hè", "Sidewalks"),
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
    "as_of_param": ("Tình trạng tại ngày", "As of day"),
    "as_of_shown": ("Đang xem số liệu tại ngày {day}: hồ sơ tiếp nhận sau ngày này không được tính, mỗi hồ sơ mang "
                    "tình trạng của ngày đó, đúng hạn/quá hạn tính tại ngày đó",
                    "Showing the data as of {day}: dossiers received later are left out, each has the status it "
                    "had that day, timeliness and overdue are reckoned at that day"),
    "without_history": ("{n} hồ sơ chưa có lịch sử tình trạng đến ngày này; hiển thị tình trạng hiện tại",
                        "{n} dossiers have no status history by that day; their current status is shown"),
    "compare": ("So sánh các kỳ", "Compare periods"),
    "compare_hint": ("ví dụ 2022-H1,2022-H2 hoặc 2022-01-01/2022-03-31", "e.g. 2022-H1,2022-H2 or 2022-01-01/2022-03-31"),
    "status_label": ("Trạng thái", "Status"),
    "status_history": ("Lịch sử tình trạng", "Status history"),
    "changed_on": ("Ngày thay đổi", "Changed on"),
    "note": ("Ghi chú", "Note"),
    "status_then": ("Tình trạng tại ngày {day}", "Status on {day}"),
    "active_then": ("đang có hiệu lực vào ngày này", "in force that day"),
    "not_active_then": ("không có hiệu lực vào ngày này", "not in force that day"),
    "not_yet_received": ("Hồ sơ chưa được tiếp nhận vào ngày {day}", "The dossier was not yet received on {day}"),
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
    'ui_upload_limits': ('Giải nén tối đa {unpacked} MB, tối đa {features} đối tượng hoặc dòng mỗi tệp.',
                         'At most {unpacked} MB unpacked and {features} features or rows per file.'),
    'ui_user': ('Người dùng', 'User'),
    'ui_user_name': ('Tên đăng nhập', 'User name'),
    'ui_warnings': ('Cảnh báo', 'Warnings'),
    'ui_when_utc': ('Thời điểm (UTC)', 'When (UTC)'),
    'ui_who': ('Người thực hiện', 'Who'),
    # import and upload messages ({opt_*}: an option of ``gisapp import``, or the upload form's field)
    'import_form_field': ('ô «{label}»', 'the field “{label}”'),
    'import_rename_columns': ('hãy đổi tên cột trong tệp', 'rename that column in the file'),
    'import_history_columns': ('tệp lịch sử tình trạng thiếu cột {columns} (tiêu đề nhận được: {headers})',
                               'the status history file lacks the column(s) {columns} (headers recognised: {headers})'),
    'import_no_file': ('{name}: không tìm thấy tệp', '{name}: no such file'),
    'import_old_xls': ('{name}: không đọc tệp .xls kiểu cũ; hãy lưu thành .xlsx',
                       '{name}: old .xls workbooks are not read; save it as .xlsx'),
    'import_unreadable_vector': ('{name}: không đọc được tệp bản đồ ({detail})',
                                 '{name}: cannot read it as a vector file ({detail})'),
    'import_unreadable': ('{name}: không đọc được tệp ({detail})', '{name}: cannot read it ({detail})'),
    'import_no_layer': ('{name} không có lớp {layer!r}; các lớp: {layers}',
                        '{name} has no layer {layer!r}; layers: {layers}'),
    'import_no_sheets': ('{name} không có trang tính nào', '{name} has no sheets'),
    'import_no_sheet': ('{name} không có trang tính {sheet!r}; các trang: {sheets}',
                        '{name} has no sheet {sheet!r}; sheets: {sheets}'),
    'import_bad_xlsx': ('{name}: không phải tệp XLSX đọc được ({detail})',
                        '{name}: not a readable XLSX workbook ({detail})'),
    'import_bad_encoding': ('{name}: không phải văn bản UTF-8 hay Windows-1258; hãy lưu thành CSV UTF-8',
                            '{name}: neither UTF-8 nor Windows-1258 text; save it as CSV UTF-8'),
    'import_bad_mapping_file': ('tệp ánh xạ cột {name}: {detail}', 'mapping file {name}: {detail}'),
    'import_bad_mapping': ('ánh xạ cột phải là bảng tên cột nguồn = tên trường (văn bản)',
                           'mapping must be a table of source column = field name (text)'),
    'import_mapping_unknown_field': ('ánh xạ cột: {fields} không phải trường của {layer}; các trường: {known}',
                                     'mapping: {fields} not a field of {layer}; fields: {known}'),
    'import_crs_not_epsg': ('{opt_crs} {text!r}: hãy nhập mã EPSG, ví dụ EPSG:5899 hoặc EPSG:4326',
                            '{opt_crs} {text!r}: give an EPSG code such as EPSG:5899 or EPSG:4326'),
    'import_crs_unknown': ('{opt_crs} {text!r}: EPSG:{code} không phải hệ tọa độ đã biết',
                           '{opt_crs} {text!r}: EPSG:{code} is not a known coordinate system'),
    'import_no_crs': ('{name} không có hệ tọa độ (Shapefile thiếu tệp .prj?); hãy ghi hệ tọa độ vào {opt_crs}, '
                      'ví dụ EPSG:5899 cho VN-2000 / TM-3 107-45',
                      '{name} has no coordinate reference system (a Shapefile without .prj?); give it in {opt_crs}, '
                      'e.g. EPSG:5899 for VN-2000 / TM-3 107-45'),
    'import_parcels_no_geometry': ('tệp thửa đất {name} không có hình học', 'parcels file {name} has no geometries'),
    'import_parcels_no_column': ('tệp thửa đất {name}: không có cột cho {fields} (các cột: {columns}); {opt_rename}',
                                 'parcels file {name}: no column for {fields} (columns: {columns}); {opt_rename}'),
    'import_needs_polygons': ('{layer} cần hình thửa riêng: hãy nhập Shapefile, GeoPackage hoặc GeoJSON '
                              '({name} là bảng)',
                              '{layer} need their own polygons: import a Shapefile, GeoPackage or GeoJSON '
                              '({name} is a table)'),
    'import_needs_parcels': ('{name} là bảng: hãy cho tệp thửa đất vào {opt_parcels} để ghép hồ sơ theo phường + '
                             'số tờ bản đồ + số thửa',
                             '{name} is a table: give the parcel polygons with {opt_parcels} to join the dossiers by '
                             'ward + map sheet + parcel number'),
    'import_unknown_layer': ('không nhập được vào {layer!r}; các lớp: {layers}',
                             'cannot import into {layer!r}; layers: {layers}'),
    'import_unknown_mode': ('cách nhập {mode!r} không có; dùng upsert hoặc replace',
                            'unknown mode {mode!r}; use upsert or replace'),
    'import_format_refused': ('{name}: không đọc tệp {suffix}; hãy dùng GeoJSON, GeoPackage, Shapefile (.zip), CSV '
                              'hoặc XLSX{opt_any_driver}',
                              '{name}: {suffix} files are not read; use GeoJSON, GeoPackage, a Shapefile (.zip), CSV '
                              'or XLSX{opt_any_driver}'),
    'import_not_geojson': ('{name}: không phải tệp GeoJSON (GeoJSON là văn bản bắt đầu bằng dấu ngoặc nhọn); '
                           'tệp không được đọc',
                           '{name}: not a GeoJSON file (GeoJSON is text starting with a curly bracket); '
                           'it is not read'),
    'import_not_gpkg': ('{name}: không phải GeoPackage (tệp SQLite có mã ứng dụng GeoPackage); tệp không được đọc',
                        '{name}: not a GeoPackage (an SQLite file with the GeoPackage application id); it is not read'),
    'import_gpkg_refused': ('{name}: mục {what!r} của GeoPackage có thể đọc tệp khác hoặc mạng; tệp không được đọc',
                            '{name}: the GeoPackage\'s {what!r} could read other files or the network; it is not read'),
    'import_not_shapefile': ('{name}: không phải Shapefile (tệp .shp và .shx bắt đầu bằng mã 9994); tệp không được đọc',
                             '{name}: not a Shapefile (its .shp and .shx start with the file code 9994); '
                             'it is not read'),
    'import_not_xlsx': ('{name}: không phải tệp XLSX (tệp nén chứa xl/workbook.xml); tệp không được đọc',
                        '{name}: not an XLSX workbook (a zip holding xl/workbook.xml); it is not read'),
    'import_format_mismatch': ('{name}: GDAL đọc tệp như {driver}, không phải {expected}; tệp không được đọc',
                               '{name}: GDAL took it for {driver}, not {expected}; it is not read'),
    'import_shapefile_incomplete': ('{name}: Shapefile thiếu tệp {missing}; hãy để .shp, .shx, .dbf và .prj cùng nhau '
                                    '(nén chung một tệp .zip để tải lên)',
                                    '{name}: the Shapefile lacks its {missing}; keep its .shp, .shx, .dbf and .prj '
                                    'together (in one .zip to upload it)'),
    'import_zip_bad': ('{name}: không phải tệp .zip đọc được ({detail})', '{name}: not a readable zip file ({detail})'),
    'import_zip_no_dataset': ('{name} không chứa tệp .shp, .geojson, .json, .gpkg, .csv hay .xlsx nào',
                              '{name} holds no .shp, .geojson, .json, .gpkg, .csv or .xlsx file'),
    'import_zip_many': ('{name} chứa nhiều bộ dữ liệu ({found}); mỗi tệp .zip chỉ chứa một',
                        '{name} holds several datasets ({found}); put one in each zip'),
    'import_unpacks_too_big': ('{name} khi giải nén lớn hơn {limit} MB; mỗi lần tải lên chỉ được giải nén tối đa '
                               '{limit} MB',
                               '{name} unpacks to more than {limit} MB; an upload may unpack to at most {limit} MB'),
    'import_too_many_features': ('{name} có hơn {limit:,} đối tượng hoặc dòng; mỗi lần tải lên tối đa {limit:,}',
                                 '{name} holds more than {limit:,} features or rows; an upload may hold at most '
                                 '{limit:,}'),
    'import_out_of_memory': ('{name}: việc đọc và kiểm tra cần hơn {limit} MB bộ nhớ, mức tối đa cho một lần nhập; '
                             'hãy chia tệp nhỏ hơn',
                             '{name}: reading and checking it needs more than {limit} MB of memory, the most an '
                             'import may use; split the file'),
    'import_too_slow': ('{name}: việc đọc và kiểm tra mất hơn {limit} giây, mức tối đa cho một lần nhập; '
                        'hãy chia tệp nhỏ hơn',
                        '{name}: reading and checking it takes more than {limit} s, the most an import may take; '
                        'split the file'),
    'import_stopped': ('{name}: việc nhập bị dừng (vượt {memory} MB bộ nhớ hoặc {seconds} giây?); hãy chia tệp nhỏ hơn',
                       '{name}: the import was stopped (past {memory} MB of memory or {seconds} s?); split the file'),
    'upload_unknown_layer': ('không có lớp {layer!r}; hãy chọn một trong {layers}',
                             'unknown layer {layer!r}; choose one of {layers}'),
    'upload_unknown_mode': ('cách nhập {mode!r} không có', 'unknown mode {mode!r}'),
    'upload_no_file': ('hãy chọn tệp để tải lên', 'choose a file to upload'),
    'upload_bad_suffix': ('{name!r}: chỉ nhận các tệp {suffixes} (Shapefile nén .zip gồm .shp, .shx, .dbf và .prj)',
                          '{name!r}: accepted files are {suffixes} (a Shapefile as a .zip with its .shp, .shx, .dbf '
                          'and .prj)'),
    'upload_folder_unusable': ('thư mục lưu tệp tải lên (GISAPP_UPLOADS) không dùng được; hãy báo quản trị viên',
                               'the upload folder (GISAPP_UPLOADS) cannot be used; tell the administrator'),
    'upload_unknown': ('không có lượt tải lên này', 'unknown upload'),
    'upload_expired': ('lượt tải lên không có hoặc đã hết hạn; hãy tải tệp lên lại',
                       'unknown or expired upload; please upload the file again'),
    'upload_no_rejects': ('lượt tải lên này không có dòng bị loại', 'this upload has no rejected rows'),
    'upload_quota_officer': ('các tệp bạn đã tải lên đang chờ xác nhận sẽ chiếm {used} MB; mỗi cán bộ chỉ được để '
                             'chờ tối đa {limit} MB (hãy xác nhận hoặc bấm «Chọn tệp khác» ở các lần trước, hoặc đợi '
                             'một ngày)',
                             'your uploads waiting for confirmation would take {used} MB; an officer may have at most '
                             '{limit} MB waiting (confirm the earlier ones or start again on them, or wait a day)'),
    'upload_quota_total': ('các tệp đang chờ xác nhận sẽ chiếm {used} MB; tổng cộng chỉ được để chờ tối đa {limit} MB; '
                           'hãy thử lại sau',
                           'uploads waiting for confirmation would take {used} MB; at most {limit} MB may wait in all; '
                           'try again later'),
    'upload_check_failed': ('{name}: không kiểm tra được ({reason}); hãy báo quản trị viên',
                            '{name}: the check failed ({reason}); tell the administrator'),
    'progress_upload': ('Đang gửi tệp', 'Sending the file'),
    'progress_queued': ('Đang chờ bắt đầu', 'Waiting to start'),
    'progress_read': ('Đang đọc tệp', 'Reading the file'),
    'progress_check': ('Đang kiểm tra các dòng', 'Checking the rows'),
    'progress_compare': ('Đang so sánh với dữ liệu hiện có', 'Comparing with the stored data'),
    'progress_write': ('Đang ghi vào kho dữ liệu', 'Writing to the store'),
    'progress_rows': ('dòng', 'rows'),
    'progress_steps': ('bước', 'steps'),
    'progress_seconds_left': ('còn khoảng {seconds} giây', 'about {seconds} s left'),
    'progress_report_ready': ('Đã kiểm tra xong', 'Check finished'),
    'progress_network': ('Mất kết nối với máy chủ; hãy thử lại', 'The server could not be reached; try again'),
    'progress_checking_title': ('Đang kiểm tra tệp', 'Checking the file'),
    'progress_importing_title': ('Đang nhập dữ liệu', 'Importing'),
    'tiles_title': ('Dựng sẵn ô bản đồ (vector tile)', 'Pre-rendered vector tiles'),
    'tiles_ready': ('Ô bản đồ của dữ liệu hiện tại đã sẵn sàng', 'The current data\'s tiles are ready'),
    'tiles_not_ready': ('Ô bản đồ của dữ liệu hiện tại chưa dựng xong', 'The current data\'s tiles are not all rendered yet'),
    'tiles_renderer': ('Tiến trình dựng ô', 'Renderer'),
    'tiles_running': ('đang chạy', 'running'),
    'tiles_stopped': ('không chạy', 'not running'),
    'tiles_state_rendering': ('đang dựng', 'rendering'),
    'tiles_state_done': ('xong', 'done'),
    'tiles_state_stopped': ('bị dừng', 'stopped'),
    'tiles_zoom': ('Mức phóng', 'Zoom'),
    'tiles_done_planned': ('Đã dựng / dự kiến', 'Done / planned'),
    'tiles_none': ('Không có thư mục ô bản đồ (GISAPP_TILE_DIR) hoặc mức phóng dựng sẵn', 'No tile folder (GISAPP_TILE_DIR) or zoom levels to pre-render'),
    'occ_title': ('Kiểm tra sử dụng tạm thời vỉa hè', 'Check a sidewalk occupancy'),
    'occ_help': ('Vẽ hình chữ nhật hoặc đa giác trên vỉa hè (công cụ vẽ ở góc trái bản đồ), hoặc bấm «Bắt đầu từ '
                 'thửa đất» rồi chọn một thửa; chọn ngày và mục đích rồi bấm «Kiểm tra».',
                 'Draw a rectangle or polygon on the sidewalk (drawing tools at the map\'s top left), or press '
                 '"Start from a parcel" and click a parcel; pick the dates and purpose, then press "Check".'),
    'occ_from_parcel': ('Bắt đầu từ thửa đất', 'Start from a parcel'),
    'occ_pick_parcel': ('Bấm vào một thửa đất trên bản đồ…', 'Click a parcel on the map…'),
    'occ_start': ('Từ ngày', 'Start'),
    'occ_end': ('Đến ngày', 'End'),
    'occ_purpose': ('Mục đích', 'Purpose'),
    'occ_dossier': ('Mã hồ sơ xây dựng (nếu có)', 'Construction dossier (optional)'),
    'occ_applicant': ('Người đề nghị', 'Applicant'),
    'occ_address': ('Địa chỉ', 'Address'),
    'occ_check': ('Kiểm tra', 'Check'),
    'occ_save': ('Lưu thành hồ sơ đề nghị cấp phép', 'File as a permit application'),
    'occ_save_changes': ('Lưu thay đổi (kiểm tra lại)', 'Save the changes (checked again)'),
    'occ_clear': ('Xóa hình vẽ', 'Clear the drawing'),
    'occ_draw_first': ('Hãy vẽ vùng chiếm dụng trên bản đồ trước.', 'Draw the occupied area on the map first.'),
    'occ_dates_first': ('Hãy chọn ngày bắt đầu và kết thúc.', 'Pick the start and end dates.'),
    'occ_checking': ('Đang kiểm tra…', 'Checking…'),
    'occ_saving': ('Đang lưu…', 'Saving…'),
    'occ_verdict': ('Kết luận', 'Verdict'),
    'occ_verdict_OK': ('Có thể cấp phép', 'OK: can be granted'),
    'occ_verdict_REFER': ('Cần cán bộ xem xét', 'Refer: an officer must look'),
    'occ_verdict_REFUSE': ('Không đủ điều kiện', 'Refuse'),
    'occ_reasons': ('Lý do', 'Reasons'),
    'occ_passage': ('Lối đi bộ hẹp nhất còn lại', 'Narrowest free passage'),
    'occ_on_day': ('ngày', 'on'),
    'occ_clashes': ('Chồng lấn với giấy phép khác', 'Clashes with other permits'),
    'occ_no_clash': ('Không chồng lấn', 'No clash'),
    'occ_days': ('ngày', 'days'),
    'occ_windows': ('Thời gian trống gần nhất', 'Nearest free periods'),
    'occ_linked': ('Hồ sơ xây dựng liên thông', 'Linked construction dossier'),
    'occ_none': ('Không có', 'None'),
    'occ_area': ('Diện tích', 'Area'),
    'occ_ward': ('Phường', 'Ward'),
    'occ_sidewalks': ('Vỉa hè', 'Sidewalks'),
    'occ_fee': ('Lệ phí', 'Fee'),
    'occ_due': ('Hạn giải quyết', 'Decision due'),
    'occ_saved': ('Đã lưu hồ sơ', 'Filed as'),
    'occ_changed': ('Đã lưu thay đổi của hồ sơ', 'Changes saved to'),
    'occ_error': ('Không thực hiện được', 'Could not be done'),
    'occ_new_permit': ('Hồ sơ mới', 'New application'),
    'upload_not_yours': ('lượt tải lên này của cán bộ khác; chỉ người tải lên hoặc quản trị viên được dùng',
                         'this upload is another officer\'s; only its uploader or an admin may use it'),
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
    (re.compile(r"unknown (\w+) code '(.*)'; codes: (.*)$", re.S), "mã '{1}' không có trong danh mục (các mã: {2})"),
    (re.compile(r"'(.*)' is not a date \(YYYY-MM-DD\)$", re.S), "'{0}' không phải là ngày (YYYY-MM-DD)"),
    (re.compile(r"'from' is after 'to'; the date range was ignored$"),
     "ngày bắt đầu sau ngày kết thúc; khoảng ngày bị bỏ qua"),
    (re.compile(r"search text is longer than (\d+) characters$"), "từ khóa tìm kiếm dài hơn {0} ký tự"),
    (re.compile(r"'(.*)' is before (\S+)$"), "'{0}' trước ngày {1}"),
    (re.compile(r"'(.*)' is more than a year after today \((\S+)\)$"), "'{0}' sau hôm nay ({1}) hơn một năm"),
    (re.compile(r"'(.*)' is not a period .*$", re.S), "'{0}' không phải là một kỳ (2022, 2022-H1, 2022-Q3 hoặc "
                                                    "YYYY-MM-DD/YYYY-MM-DD)"),
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


def fmt(value, lang: str = "vi") -> str:
    """A value for display and print: dates dd/mm/yyyy in Vietnamese, integers with thousands dots, '—' for none."""
    if value is None or value == "":
        return "—"
    if isinstance(value, dt.datetime):
        return value.strftime("%d/%m/%Y %H:%M") if lang == "vi" else value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.strftime("%d/%m/%Y") if lang == "vi" else value.isoformat()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}".replace(",", ".") if lang == "vi" else f"{value:,}"
    if isinstance(value, float):
        text = f"{value:,.2f}".rstrip("0").rstrip(".")
        return text.replace(",", "\u202f").replace(".", ",") if lang == "vi" else text
    return str(value)


def pct(value: float | None, lang: str = "vi") -> str:
    """A share as a percentage with one decimal (``54,5 %``; '—' when undefined), on pages and in print."""
    if value is None:
        return "—"
    text = f"{100 * value:.1f} %"
    return text.replace(".", ",") if lang == "vi" else text
