"""The wheel works: ``pip install .`` (not editable) into a fresh venv, then ``gisapp seed`` and ``gisapp serve``.

The wheel is built from this checkout, installed with its dependencies into a plain venv (no system site
packages, so the editable install cannot be seen), and run from a folder outside the checkout: templates,
static files and the demo's seed data must come from the installed package, and the default store from
the working folder's ``layers/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, **kwargs) -> subprocess.CompletedProcess:
    """Run ``args``, its output as text; fail the test with that output when it fails."""
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900, **kwargs)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh venv with the wheel built from this checkout installed (with its dependencies)."""
    tmp = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(ROOT)])
    wheel, = (tmp / "dist").glob("gisapp-*.whl")
    env_dir = tmp / "venv"
    run([sys.executable, "-m", "venv", str(env_dir)])
    run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", str(wheel)], env=clean_env())
    return env_dir


def clean_env(**settings) -> dict:
    """The environment without any GISAPP_* setting or PYTHONPATH, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GISAPP_") and k != "PYTHONPATH"}
    return {**env, **settings}


def get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET of ``url``."""
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.status, r.read()


def wait_for(url: str, proc: subprocess.Popen, seconds: float = 60) -> tuple[int, bytes]:
    """GET ``url`` once the server behind it answers (while ``proc`` runs)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return get(url)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.terminate()
                pytest.fail(f"server did not answer {url}:\n{proc.communicate(timeout=30)[0]}")
            time.sleep(0.3)


def test_installed_gisapp_is_the_wheel(venv, tmp_path):
    out = run([str(venv / "bin" / "python"), "-c", "import gisapp; print(gisapp.__file__)"],
              cwd=tmp_path, env=clean_env()).stdout.strip()
    assert Path(out).resolve().is_relative_to(venv.resolve()), out
    site = Path(out).resolve().parent.parent
    assert (site / "gisapp" / "templates" / "map.html").is_file()
    assert (site / "gisapp" / "seeds" / "danang_wards_2025_osm.geojson").is_file()
    assert (site / "gisapp" / "layers" / "fees_example.csv").is_file()  # the example fee table of the check
    assert [p.name for p in (site / "gisapp" / "layers").iterdir()] == ["fees_example.csv"]  # no store, no accounts


@pytest.fixture(scope="module")
def office(venv, tmp_path_factory) -> Path:
    """A folder outside the checkout where the installed ``gisapp seed`` built the demo into its default store."""
    work = tmp_path_factory.mktemp("office")
    run([str(venv / "bin" / "gisapp"), "seed", "--no-analyze"], cwd=work, env=office_env(work))
    return work


def office_env(work: Path) -> dict:
    """The environment of the commands run in ``work``: default store and accounts, private tile and upload folders."""
    return clean_env(GISAPP_TILE_DIR=str(work / "tiles"), GISAPP_UPLOADS=str(work / "uploads"))


def test_seed_and_serve_from_another_folder(venv, office):
    assert (office / "layers" / "camle.gpkg").is_file()  # the default store of an installed gisapp: ./layers/
    port = free_port()
    proc = subprocess.Popen([str(venv / "bin" / "gisapp"), "serve", "--port", str(port)], cwd=office,
                            env=office_env(office), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        status, _ = wait_for(f"http://127.0.0.1:{port}/healthz", proc)
        assert status == 200
        status, page = get(f"http://127.0.0.1:{port}/")
        assert status == 200 and b"<html" in page.lower()
        assets = re.findall(rb'(?:href|src)="(/static/[^"?#]+)', page)
        assert assets, page[:2000]
        for asset in assets:
            status, body = get(f"http://127.0.0.1:{port}{asset.decode()}")
            assert status == 200 and body, asset
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert not list(venv.glob("lib/python*/site-packages/layers"))


@pytest.mark.parametrize("folder, command, named", [
    ("seeds", ["seed"], "danang_wards_2025_osm.geojson"),
    ("templates", ["serve"], "gisapp/templates"),
])
def test_a_missing_installed_file_is_one_line(venv, office, tmp_path, folder, command, named):
    installed, = venv.glob(f"lib/python*/site-packages/gisapp/{folder}")
    moved = tmp_path / folder
    shutil.move(installed, moved)
    try:
        args = [*command, "--port", str(free_port())] if command == ["serve"] else command
        proc = subprocess.run([str(venv / "bin" / "gisapp"), *args], capture_output=True, text=True, cwd=office,
                              env=office_env(office), timeout=120)
    finally:
        shutil.move(moved, installed)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], proc.stderr


def test_check_from_another_folder_uses_the_shipped_fee_table(venv, office):
    proposal = Path(__file__).resolve().parent / "data" / "proposals" / "ok.geojson"
    out = run([str(venv / "bin" / "gisapp"), "check", str(proposal), "--json"], cwd=office,
              env=office_env(office)).stdout
    report = json.loads(out)
    assert report["verdict"] == "OK" and report["fee_table"] == "fees_example.csv" and report["fee_vnd"] > 0
