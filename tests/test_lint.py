"""The code's habits, checked where the tests run: ruff's rule set and mypy over the whole package.

Both are in the ``test`` extra; their settings are in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean():
    if shutil.which("ruff") is None and _run("ruff", "--version").returncode != 0:
        pytest.fail("ruff is not installed: pip install -e '.[test]'")
    result = _run("ruff", "check", "gisapp", "tests", "benchmarks")
    assert result.returncode == 0, result.stdout[-5000:]


def test_mypy_is_clean_over_every_module():
    result = _run("mypy", "gisapp")
    assert result.returncode == 0, result.stdout[-5000:]
