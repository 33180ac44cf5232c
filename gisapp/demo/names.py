"""Fictional Vietnamese people and real-sounding Cẩm Lệ street names for the demo data.

Names are drawn from common surnames, middle and given names; ID numbers
follow the 12-digit citizen-ID layout of Đà Nẵng (province code 048, a
sex/century digit, two digits of the birth year, six random digits).  Any
likeness to a real person is chance.  Street names are real streets of the
district, but the demo puts them on a synthetic grid, not where they are.
"""

from __future__ import annotations

import numpy as np

#: Surnames with rough weights (Central Vietnam has many Võ, Huỳnh, Hồ).
SURNAMES = {
    "Nguyễn": 30, "Trần": 10, "Lê": 10, "Võ": 7, "Huỳnh": 6, "Phạm": 5, "Phan": 5, "Hồ": 3,
    "Trương": 3, "Hoàng": 3, "Đặng": 3, "Bùi": 2, "Đỗ": 2, "Ngô": 2, "Dương": 2, "Đoàn": 2,
    "Lý": 1, "Mai": 1, "Thái": 1, "Đinh": 1, "Lương": 1,
}
MIDDLE = {
    "M": ("Văn", "Văn", "Văn", "Hữu", "Đức", "Minh", "Công", "Quang", "Thanh", "Ngọc", "Xuân", "Đình", "Tấn"),
    "F": ("Thị", "Thị", "Thị", "Thị", "Ngọc", "Thu", "Kim", "Thanh", "Mỹ", "Hoài", "Bích"),
}
GIVEN = {
    "M": ("An", "Anh", "Bảo", "Bình", "Cường", "Dũng", "Duy", "Đạt", "Đức", "Hải", "Hiếu", "Hoàng", "Hùng",
          "Huy", "Khang", "Khoa", "Kiên", "Lâm", "Long", "Lộc", "Minh", "Nam", "Nghĩa", "Phát", "Phong",
          "Phúc", "Quang", "Quân", "Sơn", "Tài", "Thành", "Thắng", "Thịnh", "Tiến", "Toàn", "Trung",
          "Tuấn", "Tùng", "Việt", "Vinh", "Vũ"),
    "F": ("Anh", "Châu", "Chi", "Dung", "Giang", "Hà", "Hạnh", "Hằng", "Hiền", "Hoa", "Hồng", "Hương",
          "Huyền", "Lan", "Liên", "Linh", "Loan", "Ly", "Mai", "My", "Nga", "Ngân", "Ngọc", "Nhung",
          "Oanh", "Phương", "Quỳnh", "Tâm", "Thảo", "Thanh", "Thu", "Thủy", "Trang", "Trinh", "Uyên",
          "Vân", "Vy", "Yến"),
}

#: Main streets per 2022 ward code (real street names of Cẩm Lệ, placed on the synthetic grid).
STREETS = {
    "20260": ("Cách Mạng Tháng Tám", "Nguyễn Hữu Thọ", "Lê Đại Hành", "Xuân Thủy", "Lương Nhữ Hộc", "Thăng Long"),
    "20305": ("Trường Chinh", "Lê Trọng Tấn", "Tôn Đản", "Phạm Tứ", "Yên Thế"),
    "20306": ("Trường Chinh", "Tôn Đản", "Yên Thế", "Lê Trọng Tấn", "Nguyễn Nhàn"),
    "20311": ("Ông Ích Đường", "Tôn Đản", "Yên Thế", "Phạm Tứ", "Nguyễn Nhàn"),
    "20312": ("Ông Ích Đường", "Cách Mạng Tháng Tám", "Nguyễn Nhàn", "Lê Đại Hành"),
    "20314": ("Nguyễn Phước Lan", "Trần Nam Trung", "Hồ Nguyên Trừng", "Phạm Hùng", "Thăng Long"),
}
#: Stems of the numbered minor streets of each ward ("Cẩm Bắc 5"), in the local style.
STREET_STEMS = {"20260": "Khuê Trung", "20305": "Phước Tường", "20306": "Hòa An", "20311": "Cẩm Nam",
                "20312": "Cẩm Bắc", "20314": "Lỗ Giáng"}
#: For wards outside the tables (benchmarks with other ward frames).
DEFAULT_STREETS = ("Ông Ích Đường", "Cách Mạng Tháng Tám", "Trường Chinh", "Nguyễn Hữu Thọ", "Phạm Hùng",
                   "Lê Trọng Tấn", "Yên Thế", "Thăng Long", "Nguyễn Phước Lan", "Trần Nam Trung",
                   "Hồ Nguyên Trừng", "Nguyễn Nhàn", "Lê Đại Hành", "Cẩm Bắc")
DEFAULT_STEM = "Đường số"


def street_names(ward_code: str, n: int) -> np.ndarray:
    """``n`` distinct street names for a ward: its main streets, then numbered minor streets."""
    main = STREETS.get(str(ward_code), DEFAULT_STREETS)[:n]
    stem = STREET_STEMS.get(str(ward_code), DEFAULT_STEM)
    numbered = [f"{stem} {k}" for k in range(1, n - len(main) + 1)]
    return np.array([*main, *numbered], dtype=object)


def people(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` fictional people: full names and 12-digit ID numbers starting 048 (vectorised)."""
    sex = np.where(rng.random(n) < 0.55, "M", "F")
    surnames = np.array(list(SURNAMES), dtype=object)
    weights = np.array(list(SURNAMES.values()), dtype=float)
    name = rng.choice(surnames, n, p=weights / weights.sum())
    middle = np.empty(n, dtype=object)
    given = np.empty(n, dtype=object)
    for s in ("M", "F"):
        m = sex == s
        middle[m] = rng.choice(np.array(MIDDLE[s], dtype=object), m.sum())
        given[m] = rng.choice(np.array(GIVEN[s], dtype=object), m.sum())
    full = name + " " + middle + " " + given
    born = rng.integers(1950, 2000, n)
    digits = rng.integers(0, 1_000_000, n)
    ids = 48_000_000_000 + np.where(sex == "M", 0, 1) * 100_000_000 + (born % 100) * 1_000_000 + digits
    return full, "0" + ids.astype(str).astype(object)  # 048…: eleven digits after the zero
