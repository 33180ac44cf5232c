"""The tile renderer beside the web server: ``gisapp tiles watch`` as a child process at low priority.

``gisapp serve`` starts it with :func:`start_watcher` and stops it with
:func:`stop_watcher`; the child calls :func:`follow` so that it ends with
its server even when the server is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def follow(parent: int) -> None:
    """Run at low priority and end when ``parent`` does (Linux), even if it is killed."""
    os.nice(10)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it ended before the line above
        sys.exit(0)


def start_watcher(store_url: str, config: dict) -> subprocess.Popen | None:
    """``gisapp tiles watch`` for ``store_url`` as a child process at low priority (``None`` when tiles are off)."""
    if not config.get("TILE_DIR"):
        return None
    env = {**os.environ, "GISAPP_STORE": str(store_url), "GISAPP_TILE_DIR": str(config["TILE_DIR"]),
           "GISAPP_TILE_WARM": ",".join(map(str, config["TILE_WARM"])) or "none"}
    return subprocess.Popen([sys.executable, "-m", "gisapp", "tiles", "watch", "--parent", str(os.getpid())], env=env)


def stop_watcher(proc: subprocess.Popen | None) -> None:
    """Stop the child of :func:`start_watcher` (a render in progress is resumed by the next one)."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
