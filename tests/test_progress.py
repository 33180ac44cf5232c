"""Progress of long work (issue 20): the core callback and status file, and the commands' bars on stderr.

The commands run as real processes: under a pseudo-terminal on stderr (as a
person at a terminal sees them) they draw progress; with stderr piped (a
script, CI) they print none; ``--json`` stdout is one JSON document either way.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gisapp import domain
from gisapp.demo import build as demo
from gisapp.progress import StatusFile, Tracker, counted, read_json, time_left, write_json

ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the core ------------------------------------------------------------------


def test_time_left_is_the_rate_so_far_applied_to_what_remains():
    assert time_left(250, 1000, 10.0) == pytest.approx(30.0)
    assert time_left(None, 1000, 10.0) is None
    assert time_left(0, 1000, 10.0) is None
    assert time_left(5, None, 10.0) is None
    assert time_left(1000, 1000, 10.0) == 0.0


def test_tracker_keeps_the_stage_and_when_it_began():
    clock = FakeClock()
    tracker = Tracker(clock)
    assert tracker("read", 0, 100, "rows") is True
    clock.now += 4
    assert tracker("read", 40, 100, "rows") is False
    state = tracker.state()
    assert state["stage"] == "read" and state["done"] == 40 and state["total"] == 100
    assert state["seconds_left"] == pytest.approx(6.0)
    assert tracker("write", 0, 10, "rows") is True
    assert tracker.state()["seconds_left"] is None


def test_status_file_is_written_at_a_stage_change_and_then_at_most_every_interval(tmp_path):
    clock = FakeClock()
    path = tmp_path / "status.json"
    status = StatusFile(path, interval=0.5, extra={"state": "checking"}, clock=clock)
    status("read", 0, 1000, "rows")
    assert read_json(path)["done"] == 0
    clock.now += 0.1
    status("read", 10, 1000, "rows")
    assert read_json(path)["done"] == 0  # too soon
    clock.now += 0.5
    status("read", 20, 1000, "rows")
    assert read_json(path)["done"] == 20
    status("check", 1, 6, "steps")  # a new stage: at once
    data = read_json(path)
    assert data["stage"] == "check" and data["state"] == "checking"
    status.write(state="done")
    assert read_json(path)["state"] == "done"
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary files left


def test_write_json_replaces_whole_files_and_read_json_refuses_what_is_not_an_object(tmp_path):
    path = tmp_path / "x.json"
    write_json(path, {"a": 1})
    assert read_json(path) == {"a": 1}
    path.write_text("[1, 2]")
    assert read_json(path) is None
    assert read_json(tmp_path / "missing.json") is None


def test_counted_reports_the_running_sum():
    heard = []
    items = list(counted([[1, 2], [3]], lambda *a: heard.append(a), "export", 3, "rows"))
    assert items == [[1, 2], [3]]
    assert heard == [("export", 0, 3, "rows"), ("export", 2, 3, "rows"), ("export", 3, 3, "rows")]


# -- the commands --------------------------------------------------------------


def _env(tmp_path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GISAPP_STORE": str(tmp_path / "store.gpkg"),
           "COLUMNS": "120"}
    env.pop("CI", None)
    return env


def run_in_terminal(args: list[str], env: dict, timeout: float = 240) -> tuple[int, str, str]:
    """Run ``python -m gisapp ARGS`` with stderr on a pseudo-terminal; (status, stdout, what the terminal showed)."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "gisapp", *args], stdout=subprocess.PIPE, stderr=slave,
                            stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    os.close(slave)
    shown, deadline = b"", time.monotonic() + timeout
    stdout = b""
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master, proc.stdout], [], [], 0.2)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    data = b""
                shown += data
                if not data and proc.poll() is not None:
                    break
            if proc.stdout in ready:
                stdout += proc.stdout.read1(65536)  # type: ignore[attr-defined]
            if proc.poll() is not None and not ready:
                break
        stdout += proc.stdout.read()  # type: ignore[union-attr]
        status = proc.wait(timeout=10)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return status, stdout.decode(), shown.decode(errors="replace")


def run_piped(args: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run ``python -m gisapp ARGS`` with stdout and stderr piped (a script, CI)."""
    return subprocess.run([sys.executable, "-m", "gisapp", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=240, check=False)


#: The commands' tests start processes (a few seconds each): not in the quick lane.
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    """A folder with a seeded demo store, the seed's terminal output, and an export to import."""
    folder = tmp_path_factory.mktemp("progress")
    env = _env(folder)
    status, stdout, shown = run_in_terminal(["seed"], env)
    assert status == 0, shown
    return folder, stdout, shown


@slow
def test_seed_under_a_terminal_shows_its_stages_with_counts(seeded):
    _, stdout, shown = seeded
    assert "building the demo data" in shown
    frames, _ = demo.build(domain.Calendar())
    assert "writing" in shown and f"/ {sum(len(f) for f in frames.values()):,} rows" in shown and "100%" in shown
    assert "analysing" in shown
    assert "writing" not in stdout and "seeded" in stdout  # progress never on stdout


@slow
@pytest.mark.parametrize("args", [
    ["analyze"],
    ["export", "construction_permits", "-o", "{dir}/out.csv"],
    ["tiles", "render", "--zooms", "14"],
])
def test_long_commands_show_progress_on_a_terminal_and_none_when_piped(seeded, args):
    folder, _, _ = seeded
    env = _env(folder)
    env["GISAPP_TILE_DIR"] = str(folder / f"tiles-{args[0]}")
    args = [a.format(dir=folder) for a in args]
    status, stdout, shown = run_in_terminal(args, env)
    assert status == 0, shown
    assert "%" in shown and "\r" in shown, shown  # a bar, redrawn in place
    expected = {"analyze": "reading", "export": "exporting", "tiles": "rendering construction_permits z14"}[args[0]]
    assert expected in shown
    env["GISAPP_TILE_DIR"] = str(folder / f"tiles-{args[0]}-piped")
    piped = run_piped(args, env)
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == ""
    assert "\r" not in piped.stdout and "rows" not in piped.stdout


@slow
def test_import_shows_its_stages_and_json_parses_in_a_terminal_and_piped(seeded, tmp_path):
    folder, _, _ = seeded
    env = _env(folder)
    source = tmp_path / "permits.geojson"
    assert run_piped(["export", "construction_permits", "-o", str(source)], env).returncode == 0
    args = ["import", "construction_permits", str(source), "--dry-run", "--json"]
    status, stdout, shown = run_in_terminal(args, env)
    assert status == 0, shown
    assert "reading" in shown and "checking" in shown and "steps" in shown
    report = json.loads(stdout)
    assert report["read"] == report["accepted"] > 0 and report["dry_run"] is True
    piped = run_piped(args, env)
    assert piped.returncode == 0 and piped.stderr == ""
    assert json.loads(piped.stdout) == {**report}


@slow
def test_analyze_json_is_one_document_and_quiet_silences_the_terminal(seeded):
    folder, _, _ = seeded
    env = _env(folder)
    status, stdout, shown = run_in_terminal(["analyze", "--json", "--quiet"], env)
    assert status == 0
    assert shown == ""
    doc = json.loads(stdout)
    assert doc["findings"] > 0 and doc["summary"][-1]["findings"] == doc["findings"]  # the total row last
    status, _, shown = run_in_terminal(["--quiet", "analyze"], env)  # before the command too
    assert status == 0 and shown == ""


@slow
def test_progress_flag_prints_plain_lines_on_a_pipe(seeded):
    folder, _, _ = seeded
    piped = run_piped(["--progress", "analyze", "--json"], _env(folder))
    assert piped.returncode == 0
    json.loads(piped.stdout)
    lines = piped.stderr.splitlines()
    assert "\r" not in piped.stderr and "\x1b" not in piped.stderr
    assert any(line.startswith("reading: ") and "rows" in line for line in lines)
    assert "analysing…" in lines


@slow
def test_db_upgrade_shows_its_migrations_on_a_terminal(pg_url, tmp_path):
    env = {**_env(tmp_path), "GISAPP_STORE": pg_url}
    status, stdout, shown = run_in_terminal(["db", "upgrade"], env)
    assert status == 0, shown
    assert "migrating" in shown and "migrations" in shown
    assert "schema version" in stdout
    piped = run_piped(["db", "upgrade"], env)
    assert piped.returncode == 0 and piped.stderr == ""


# -- the command line's renderer and the tile renderer's file, in process ---------------------------


def test_plain_lines_on_a_pipe_come_per_stage_and_at_most_every_two_seconds():
    import io

    from gisapp.cli.progress import TerminalProgress

    clock, out = FakeClock(), io.StringIO()
    drawn = TerminalProgress(out, tty=False, clock=clock)
    drawn("read", 0, 1_000_000, "rows")
    clock.now += 1
    drawn("read", 340_000, 1_000_000, "rows")  # too soon for another line
    clock.now += 1.5
    drawn("read", 500_000, 1_000_000, "rows")
    drawn("analyse")
    drawn("write", 689_782, 689_782, "rows")
    drawn.close()
    assert out.getvalue().splitlines() == [
        "reading: 0 / 1,000,000 rows (0%)",
        "reading: 500,000 / 1,000,000 rows (50%, about 2 s left)",
        "analysing…",
        "writing: 689,782 / 689,782 rows (100%)",
    ]


def test_the_cli_runner_sees_progress_only_when_asked(demo_store):
    from click.testing import CliRunner

    from gisapp.cli import cli

    runner = CliRunner()
    quiet = runner.invoke(cli, ["--store", demo_store.url, "analyze", "--json"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    json.loads(quiet.stdout)
    shown = runner.invoke(cli, ["--store", demo_store.url, "analyze", "--json", "--progress"])
    assert shown.exit_code == 0 and "reading: " in shown.stderr and "analysing…" in shown.stderr
    json.loads(shown.stdout)


def test_the_renderer_keeps_its_counts_per_layer_and_zoom_in_the_tile_folder(demo_store, tmp_path):
    from gisapp.tiles.disk import TileDir, render

    tile_dir = TileDir(tmp_path / "tiles", demo_store.url)
    heard = []
    report = render(demo_store, tile_dir, (14, 15), progress=lambda *a: heard.append(a))
    data = tile_dir.progress()
    assert data["state"] == "done" and data["tiles_done"] == report["tiles"]
    for layer, zooms in data["layers"].items():
        assert set(zooms) == {"14", "15"}
        assert all(c["done"] == c["planned"] > 0 for c in zooms.values()), (layer, zooms)
        assert (f"render {layer} z15", zooms["15"]["planned"], zooms["15"]["planned"], "tiles") in heard
