"""The demo's status history: how every dossier and sidewalk permit reached its current status.

Consistent with the layers' dates (vectorised; the same for every build):

- a dossier is RECEIVED on its ``received_on`` (07:30-09:29), PROCESSING
  from the next working day (10:00; the same day when that is after the
  data's as-of date or its completion); some then wait for a supplement or
  a fee (13:00, between processing and completion); a closed one gets its
  outcome on ``completed_on`` (15:00: RESULT_READY when granted, then
  RETURNED 0-3 days later but not after the as-of date, at 16:30; REFUSED,
  WITHDRAWN); NOT_ACCEPTED ones are refused on the day of receipt; open ones
  end in their current status;
- a sidewalk permit is RECEIVED 3-10 days before its first day (no later
  than 3 days before the as-of date), PROCESSING the next day, and gets its
  outcome the day before its first day (no later than the as-of date).

The last row of every feature is its current status, so the history and
the layers agree on any day up to the as-of date.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from gisapp import domain, history

#: Share of granted dossiers that waited for a fee or a supplement on the way.
DETOUR_SHARE = 0.15


def _days(values) -> np.ndarray:
    return pd.to_datetime(pd.Series(values)).to_numpy().astype("datetime64[D]")


def _minutes(rng: np.random.Generator, n: int, first: str, span: int) -> np.ndarray:
    """Times of day ``first`` + 0..``span``-1 minutes, as ``HH:MM:SS`` text."""
    h, m = (int(v) for v in first.split(":"))
    total = h * 60 + m + rng.integers(0, span, n)
    return np.array([f"{t // 60:02d}:{t % 60:02d}:00" for t in total], dtype=object)


def dossier_history(permits: pd.DataFrame, calendar: domain.Calendar, as_of: dt.date,
                    seed: int = 2022) -> pd.DataFrame:
    """The history of ``permits`` (construction dossiers) up to ``as_of`` (see the module's docstring)."""
    rng = np.random.default_rng(seed + 16)
    n = len(permits)
    code = permits["dossier_code"].to_numpy(dtype=object)
    status = permits["status"].to_numpy(dtype=object)
    received = _days(permits["received_on"])
    completed = _days(permits["completed_on"])
    last = np.datetime64(as_of, "D")
    closed = ~np.isnat(completed)
    parts = [(np.ones(n, bool), "RECEIVED", received, _minutes(rng, n, "07:30", 120))]
    next_day = calendar.add_working_days(pd.Series(received.astype("datetime64[ms]")), 1).to_numpy() \
        .astype("datetime64[D]")
    bound = np.where(closed, completed, last)
    processing = np.where(next_day <= bound, next_day, received)
    not_accepted = status == "NOT_ACCEPTED"
    handled = ~not_accepted & (status != "RECEIVED")
    parts.append((handled, "PROCESSING", processing, np.full(n, "10:00:00", dtype=object)))
    # a wait on the way: open ones now waiting, and some granted ones
    span = np.maximum((bound - processing).astype("int64"), 0)
    wait_day = processing + (rng.random(n) * (span + 1)).astype("int64").astype("timedelta64[D]")
    granted = np.isin(status, ["RESULT_READY", "RETURNED"])
    detour = granted & (rng.random(n) < DETOUR_SHARE)
    detour_status = np.where(rng.random(n) < 0.5, "FEE_PENDING", "SUPPLEMENT_REQUESTED")
    for waiting in ("SUPPLEMENT_REQUESTED", "FEE_PENDING"):
        parts.append(((status == waiting) | (detour & (detour_status == waiting)), waiting, wait_day,
                      np.full(n, "13:00:00", dtype=object)))
    parts.append((granted, "RESULT_READY", completed, np.full(n, "15:00:00", dtype=object)))
    returned_day = np.minimum(completed + rng.integers(0, 4, n).astype("timedelta64[D]"), last)
    returned_day = np.where(returned_day < completed, completed, returned_day)
    parts.append((status == "RETURNED", "RETURNED", returned_day, np.full(n, "16:30:00", dtype=object)))
    for outcome in ("REFUSED", "WITHDRAWN", "NOT_ACCEPTED"):
        parts.append((status == outcome, outcome, np.where(closed, completed, received),
                      np.full(n, "15:00:00", dtype=object)))
    return _rows("construction_permits", code, parts)


def sidewalk_history(sidewalk: pd.DataFrame, as_of: dt.date, seed: int = 2022) -> pd.DataFrame:
    """The history of sidewalk permits up to ``as_of`` (see the module's docstring)."""
    rng = np.random.default_rng(seed + 17)
    n = len(sidewalk)
    key = sidewalk["permit_no"].to_numpy(dtype=object)
    status = sidewalk["status"].to_numpy(dtype=object)
    start = _days(sidewalk["start_on"])
    last = np.datetime64(as_of, "D")
    applied = np.minimum(start - rng.integers(3, 11, n).astype("timedelta64[D]"), last - np.timedelta64(3, "D"))
    outcome_day = np.minimum(start - np.timedelta64(1, "D"), last)
    parts = [(np.ones(n, bool), "RECEIVED", applied, np.full(n, "08:00:00", dtype=object)),
             (status != "RECEIVED", "PROCESSING", applied + np.timedelta64(1, "D"),
              np.full(n, "10:00:00", dtype=object))]
    for outcome in ("RETURNED", "REFUSED", "WITHDRAWN"):
        parts.append((status == outcome, outcome, outcome_day, np.full(n, "15:00:00", dtype=object)))
    return _rows("sidewalk_permits", key, parts)


def _rows(layer: str, keys: np.ndarray, parts) -> pd.DataFrame:
    """One history frame of the ``(mask, status, days, times)`` parts, ordered by key and time."""
    frames = []
    for mask, status, days, times in parts:
        idx = np.flatnonzero(mask)
        frames.append(pd.DataFrame({"key": keys[idx], "status": status,
                                    "changed_on": np.asarray(days)[idx].astype("datetime64[ms]"),
                                    "changed_at": np.asarray(times, dtype=object)[idx]}))
    rows = pd.concat(frames, ignore_index=True).sort_values(["key", "changed_on", "changed_at"], kind="stable")
    return history.frame([layer] * len(rows), rows["key"].tolist(), rows["status"].tolist(),
                         rows["changed_on"].to_numpy(), rows["changed_at"].tolist(), ["demo"] * len(rows))


def demo_history(frames: dict, calendar: domain.Calendar | None = None, as_of: dt.date | None = None,
                 seed: int = 2022) -> pd.DataFrame:
    """The history of the demo ``frames`` (:func:`gisapp.demo.build.build`'s): dossiers, then sidewalk permits."""
    from gisapp.demo.build import AS_OF

    calendar = calendar or domain.Calendar()
    as_of = as_of or AS_OF
    parts = [dossier_history(frames["construction_permits"], calendar, as_of, seed)]
    if "sidewalk_permits" in frames and len(frames["sidewalk_permits"]):
        parts.append(sidewalk_history(frames["sidewalk_permits"], as_of, seed))
    return pd.concat(parts, ignore_index=True)
