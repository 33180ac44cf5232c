"""The benchmarks (``python -m benchmarks``; see ``benchmarks/__main__.py``) and what they share."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

#: Where every benchmark writes its JSON results.
OUT_DIR = Path(__file__).resolve().parent / "out"


def save_results(name: str, results: dict) -> Path:
    """Write ``results`` as ``benchmarks/out/<name>_<time>.json``, say where, and return the path."""
    OUT_DIR.mkdir(exist_ok=True)
    out = OUT_DIR / f"{name}_{dt.datetime.now().strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {out.relative_to(OUT_DIR.parent.parent)}")
    return out
