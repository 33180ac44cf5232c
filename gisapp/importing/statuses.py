"""Import of a one-stop system's status history export: one row per status change, into ``status_changes``.

A CSV (UTF-8 or Windows-1258) or XLSX table with Vietnamese or English
headers, recognised like the layers' (case- and accent-blind, see
:data:`ALIASES`): the dossier code or sidewalk permit number, the status
(code or label, as in the layer imports), the date of the change (``dd/mm/yyyy``,
ISO, an Excel date; a time of day in the same cell — ``15/03/2022 14:30`` —
or in a column of its own), an optional note and an optional layer.

Every row is accepted or rejected with its reason (into the rejects file,
as the layer imports do); accepted rows are added to the store's history in
one write, nothing else is touched.  Rejected: a missing key, status or
date; an unknown status; an unparseable date or time; a key that is neither
a stored dossier nor a stored sidewalk permit; a change dated before the
dossier was received; two changes of one key at the same moment (in the
file, or the same as a stored change).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import numpy as np
import pandas as pd

from gisapp import domain, history
from gisapp.importing.prepare import BAD_DATE, MISSING, UNKNOWN_CODE, ImportReport, _Problems, _rejects_frame
from gisapp.importing.read import NO_LIMITS, ImportFailure, ReadLimits, read_source
from gisapp.importing.values import key as header_key
from gisapp.importing.values import parse_codes, parse_dates, to_text
from gisapp.store import Store

NAME = history.TABLE
#: Field → headers it is recognised by (besides its own name).
ALIASES: dict[str, tuple[str, ...]] = {
    "key": ("Mã hồ sơ", "Số hồ sơ", "Mã HS", "Số HS", "Mã số hồ sơ", "dossier_code", "permit_no",
            "Số giấy phép", "Số GP", "PermitNum"),
    "layer": ("Loại hồ sơ", "Lớp", "layer"),
    "status": ("Trạng thái", "Tình trạng", "Trạng thái xử lý", "Tình trạng hồ sơ", "Trạng thái hồ sơ",
               "Trạng thái mới", "Status"),
    "changed_on": ("Ngày", "Ngày thay đổi", "Ngày cập nhật", "Thời gian", "Thời điểm", "Ngày xử lý",
                   "Ngày chuyển", "Thời gian cập nhật", "Date"),
    "changed_at": ("Giờ", "Giờ thay đổi", "Time"),
    "note": ("Ghi chú", "Nội dung", "Ý kiến xử lý", "Nội dung xử lý", "Comments", "Note"),
}
REQUIRED = ("key", "status", "changed_on")
_TIME = re.compile(r"(?<!\d)(\d{1,2}):(\d{2})(?::(\d{2}))?")
_LAYER_WORDS = {"construction_permits": ("construction", "xaydung", "gpxd", "xd"),
                "sidewalk_permits": ("sidewalk", "viahe", "vh")}


def match(columns) -> dict[str, str]:
    """Field → the source column that gives it (the first whose header is an alias)."""
    out: dict[str, str] = {}
    for column in columns:
        k = header_key(column)
        for name, aliases in ALIASES.items():
            if name not in out and k in {header_key(a) for a in (name, *aliases)}:
                out[name] = str(column)
                break
    return out


def _times(values: pd.Series, separate: pd.Series | None) -> tuple[np.ndarray, np.ndarray]:
    """``HH:MM:SS`` (or ``""``) of each change, from the date cell or the time column, and the bad ones."""
    n = len(values)
    out = np.full(n, "", dtype=object)
    bad = np.zeros(n, dtype=bool)
    for i, v in enumerate(values.to_numpy(dtype=object)):
        if isinstance(v, (dt.datetime, pd.Timestamp)) and (v.hour or v.minute or v.second):
            out[i] = f"{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        elif isinstance(v, str) and (m := _TIME.search(v)):
            out[i], bad[i] = _clock(m.group(1), m.group(2), m.group(3))
    if separate is not None:
        for i, v in enumerate(separate.to_numpy(dtype=object)):
            if isinstance(v, dt.time):
                out[i] = v.strftime("%H:%M:%S")
            elif v is not None and not (isinstance(v, float) and np.isnan(v)) and str(v).strip():
                m = _TIME.fullmatch(str(v).strip())
                if m:
                    out[i], bad[i] = _clock(m.group(1), m.group(2), m.group(3))
                else:
                    bad[i] = True
    return out, bad


def _clock(h: str, m: str, s: str | None) -> tuple[str, bool]:
    hour, minute, second = int(h), int(m), int(s or 0)
    if hour > 23 or minute > 59 or second > 59:
        return "", True
    return f"{hour:02d}:{minute:02d}:{second:02d}", False


def _layers(keys: pd.Series, given: pd.Series | None, known: pd.DataFrame) -> np.ndarray:
    """The layer of each row: the one named in the file, else the one holding the key (dossiers first)."""
    stored = {layer: set(known.loc[known["layer"] == layer, "key"]) for layer in history.LAYER_KEYS}
    out = np.full(len(keys), None, dtype=object)
    for i, k in enumerate(keys.to_numpy(dtype=object)):
        text = header_key(given.iat[i]) if given is not None and pd.notna(given.iat[i]) else ""
        named = next((layer for layer, words in _LAYER_WORDS.items() if text and any(w in text for w in words)), None)
        out[i] = named or next((layer for layer in history.LAYER_KEYS if k in stored[layer]), "construction_permits")
    return out


def known_features(store: Store) -> pd.DataFrame:
    """Stored dossiers and sidewalk permits: ``layer``, ``key``, ``received_on`` (NaT for permits)."""
    parts = []
    if store.exists():
        for layer, key in history.LAYER_KEYS.items():
            fields = [key, "received_on"] if layer == "construction_permits" else [key]
            table = store.read_arrow(layer, fields=fields)
            if table is None:
                continue
            frame = pd.DataFrame({"key": table.column(key).to_pylist()})
            frame["layer"] = layer
            frame["received_on"] = pd.to_datetime(pd.Series(table.column("received_on").to_pylist())) \
                if "received_on" in fields else pd.NaT
            parts.append(frame)
    if not parts:
        return pd.DataFrame({"layer": pd.Series(dtype=object), "key": pd.Series(dtype=object),
                             "received_on": pd.Series(dtype="datetime64[ms]")})
    return pd.concat(parts, ignore_index=True)[["layer", "key", "received_on"]]


def run_history_import(store: Store, path, *, dry_run: bool = False, sheet: str | None = None,
                       limits: ReadLimits = NO_LIMITS) -> ImportReport:
    """Check ``path`` (a history export) against ``store`` and add its accepted rows to the history."""
    keys = frozenset(header_key(a) for name, aliases in ALIASES.items() for a in (name, *aliases))
    source = read_source(path, sheet=sheet, header_keys=keys, limits=limits)
    frame = source.frame
    columns = match(frame.columns)
    missing = [f for f in REQUIRED if f not in columns]
    if missing:
        raise ImportFailure("import_history_columns", columns=", ".join(missing),
                            headers="; ".join(f"{f}: {', '.join(ALIASES[f][:3])}" for f in missing))
    n = len(frame)
    problems = _Problems(n)
    key_text = to_text(frame[columns["key"]]).reset_index(drop=True)
    problems.add(key_text.isna().to_numpy(), MISSING, "key")
    status, bad_status = parse_codes(frame[columns["status"]].reset_index(drop=True), "status")
    status_text = to_text(frame[columns["status"]]).reset_index(drop=True)
    problems.add(status_text.isna().to_numpy(), MISSING, "status")
    problems.add(bad_status, UNKNOWN_CODE, "status", status_text,
                 f"unknown status; expected a code or label of {', '.join(domain.STATUSES)}")
    raw_dates = frame[columns["changed_on"]].reset_index(drop=True)
    days, bad_day = parse_dates(raw_dates)
    problems.add(to_text(raw_dates).isna().to_numpy(), MISSING, "changed_on")
    problems.add(bad_day, BAD_DATE, "changed_on", raw_dates)
    separate = frame[columns["changed_at"]].reset_index(drop=True) if "changed_at" in columns else None
    times, bad_time = _times(raw_dates, separate)
    problems.add(bad_time & ~bad_day, BAD_DATE, "changed_at", separate if separate is not None else raw_dates,
                 "not a time of day (HH:MM or HH:MM:SS)")
    known = known_features(store)
    layer_col = frame[columns["layer"]].reset_index(drop=True) if "layer" in columns else None
    layers = _layers(key_text, layer_col, known)
    notes = to_text(frame[columns["note"]]).reset_index(drop=True) if "note" in columns else pd.Series([None] * n)
    rows = history.frame(layers, key_text.fillna("").tolist(), status.tolist(), days.tolist(), times.tolist(),
                         notes.tolist())
    usable = ~(problems.covered("key") | problems.covered("status") | problems.covered("changed_on")
               | problems.covered("changed_at"))
    checked = rows[usable].reset_index(drop=True)
    positions = np.flatnonzero(usable)
    stored_keys = {layer: checked.loc[checked["layer"] == layer, "key"].unique().tolist()
                   for layer in history.LAYER_KEYS}
    stored = pd.concat([store.status_history(layer, keys) for layer, keys in stored_keys.items() if keys]
                       or [history.empty()], ignore_index=True) if store.exists() else history.empty()
    both = pd.concat([checked.assign(stored=False), stored[list(history.COLUMNS)].assign(stored=True)],
                     ignore_index=True)
    for i, reason, detail in history.problems(both, known):
        problems.parts.append((np.array([positions[i]]), reason, [detail]))
    table = problems.table()
    rejected = np.zeros(n, dtype=bool)
    rejected[table["pos"].to_numpy(dtype=int)] = True
    accepted = rows[~rejected].reset_index(drop=True)
    by_reason = {reason: int(count) for reason, count in table["reason"].value_counts().items()}
    write = not dry_run and len(accepted) > 0
    if write:
        store.write({}, mode="upsert", history=accepted)
    report = ImportReport(
        layer=NAME, source=source.path.name, detail=source.detail, read=n, accepted=len(accepted), repaired=0,
        rejected=int(rejected.sum()), rejected_by_reason=by_reason, warnings=source.warnings,
        columns={f: columns[f] for f in ALIASES if f in columns}, frame=accepted,
        rejects=_rejects_frame(source, table), ward_mismatches=pd.DataFrame(),
    )
    return dataclasses.replace(report, mode="upsert", dry_run=dry_run, written=write,
                               changes={"new": len(accepted), "updated": 0, "unchanged": 0})
