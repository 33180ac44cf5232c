"""The tile renderer beside the web server: ``gisapp tiles watch`` as a child process at low priority.

``gisapp serve`` keeps one running with :class:`Renderer`: started with the
server, started again when it ends (a crash, a kill, the memory killer)
after a pause that doubles from :data:`RESTART_MIN_S` to :data:`RESTART_MAX_S`
while it keeps ending within :data:`STABLE_S` (a crash loop does not spin),
stopped with the server.  The child calls :func:`follow` so that it ends
with its server even when the server is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # linux/prctl.h
#: Pause before starting a renderer that ended again, doubling up to the longest, seconds.
RESTART_MIN_S, RESTART_MAX_S = 1.0, 60.0
#: A renderer that ran this long before it ended is started again after the shortest pause.
STABLE_S = 60.0


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


def _stderr(message: str) -> None:
    print(f"tiles: {message}", file=sys.stderr, flush=True)


class Renderer:
    """The server's tile renderer (:func:`start_watcher`), started again whenever it ends until :meth:`stop`.

    A thread of the server process watches the child; restarts wait
    :data:`RESTART_MIN_S`, then twice as long each time the renderer ended
    within :data:`STABLE_S` of its start, up to :data:`RESTART_MAX_S`.
    """

    def __init__(self, store_url: str, config: dict, *, log: Callable[[str], None] = _stderr,
                 min_pause: float = RESTART_MIN_S, max_pause: float = RESTART_MAX_S):
        self.store_url, self.config, self.log = store_url, config, log
        self.min_pause, self.max_pause = min_pause, max_pause
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Renderer:
        """Start the renderer and its keeper (nothing when tiles are off)."""
        self.proc = start_watcher(self.store_url, self.config)
        if self.proc is not None:
            self._thread = threading.Thread(target=self._keep, name="gisapp-tile-renderer", daemon=True)
            self._thread.start()
        return self

    def _keep(self) -> None:
        pause, started = self.min_pause, time.monotonic()
        while not self._stopping.is_set():
            proc = self.proc
            if proc is None or proc.poll() is None:
                self._stopping.wait(0.5)
                continue
            ran = time.monotonic() - started
            pause = self.min_pause if ran >= STABLE_S else pause
            self.log(f"the tile renderer (process {proc.pid}) ended with code {proc.returncode} after {ran:.0f} s; "
                     f"starting it again in {pause:.0f} s")
            if self._stopping.wait(pause):
                return
            self.proc, started = start_watcher(self.store_url, self.config), time.monotonic()
            self.restarts += 1
            pause = min(pause * 2, self.max_pause)

    def stop(self) -> None:
        """Stop the keeper, then the renderer (a render in progress is resumed by the next one)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        stop_watcher(self.proc)
