"""Progress on the command line: bars on stderr for the long commands, only when someone watches.

The work reports through :class:`gisapp.progress.Progress`; this module
draws it.  On a terminal each stage with counts gets a
:func:`click.progressbar` (the bar, ``340,000 / 1,000,000 rows``, the
percentage and the time left, from click's rolling average); a stage
without counts is one line.  Progress goes to stderr, and only when stderr
is a terminal, or with ``--progress`` (then, on a pipe or a CI log, one
plain line per stage and at most one every :data:`LINE_INTERVAL_S` seconds,
no carriage returns); ``--quiet`` silences it.  Stdout (the summary, a
``--json`` document) never carries it.

A command shows progress with::

    @click.command()
    @progress_options
    @click.pass_context
    def report(click_ctx, ...):
        with shown(click_ctx) as progress:
            do_the_work(..., progress=progress)

``--progress``/``--quiet`` work before the command (``gisapp --quiet
import …``) and after it (``gisapp import … --quiet``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

import click

from gisapp.progress import SILENT, Progress, time_left

#: ``click_ctx.meta`` key of the choice: ``None`` (terminal only), ``"on"`` or ``"off"``.
META_KEY = "gisapp.progress"
#: Seconds between two plain lines of one stage when stderr is not a terminal.
LINE_INTERVAL_S = 2.0
#: How the stages read.
LABELS = {"read": "reading", "check": "checking", "compare": "comparing with the store", "write": "writing",
          "analyse": "analysing", "migrate": "migrating", "build": "building the demo data",
          "export": "exporting", "render": "rendering"}


def _label(stage: str) -> str:
    word, _, rest = stage.partition(" ")
    return " ".join(x for x in (LABELS.get(word, word), rest) if x)


def _choose(value: str):
    def callback(ctx: click.Context, _param: click.Parameter, flag: bool) -> None:
        if flag:
            ctx.meta[META_KEY] = value
    return callback


def progress_options(f):
    """Add ``--progress`` and ``--quiet`` to a command (or the group)."""
    f = click.option("--quiet", is_flag=True, expose_value=False, callback=_choose("off"),
                     help="Show no progress.")(f)
    f = click.option("--progress", is_flag=True, expose_value=False, callback=_choose("on"),
                     help="Show progress on stderr even when it is not a terminal.")(f)
    return f


class TerminalProgress:
    """A :class:`~gisapp.progress.Progress` drawn on ``file``: click bars on a terminal, plain lines elsewhere."""

    def __init__(self, file: TextIO, tty: bool, clock=time.monotonic):
        self.file, self.tty, self._clock = file, tty, clock
        self._bar: Any = None
        self._key: tuple | None = None
        self._stage_started = self._line_at = 0.0

    def __call__(self, stage: str, done: int | None = None, total: int | None = None, unit: str = "") -> None:
        key = (stage, total, unit)
        if key != self._key:
            self.close()
            self._key, self._stage_started, self._line_at = key, self._clock(), 0.0
            if self.tty and total:
                self._bar = click.progressbar(
                    length=total, label=_label(stage), file=self.file, show_pos=False, show_percent=True,
                    show_eta=True, item_show_func=lambda n: f"{n or 0:,} / {total:,} {unit}")
                self._bar.__enter__()
            elif not total:
                self._line(_label(stage) + (f" {done:,} {unit}" if done else "") + "…")
        if self._bar is not None:
            if done is not None and done > self._bar.pos:
                self._bar.update(done - self._bar.pos, current_item=done)
        elif total and done is not None and (self._clock() - self._line_at >= LINE_INTERVAL_S or done >= total):
            left = time_left(done, total, self._clock() - self._stage_started)
            eta = f", about {left:.0f} s left" if left else ""
            self._line(f"{_label(stage)}: {done:,} / {total:,} {unit} ({done / total:.0%}{eta})")

    def _line(self, text: str) -> None:
        self._line_at = self._clock()
        click.echo(text, file=self.file)

    def close(self) -> None:
        """End the current bar (its line stays)."""
        if self._bar is not None:
            self._bar.render_finish()
            self._bar = None
        self._key = None

    def echo(self, message: str) -> None:
        """Print ``message`` on stdout without breaking a bar (the bar goes on on its next report)."""
        if self._bar is not None and self.tty:
            self.file.write("\r\033[K")
            self.file.flush()
            self._bar._last_line = None  # redraw it next time
        click.echo(message)


def wanted(click_ctx: click.Context | None, file: TextIO) -> bool:
    """Whether to show progress: as ``--progress``/``--quiet`` say, else when ``file`` is a terminal."""
    choice = None
    if click_ctx is not None:
        choice = click_ctx.meta.get(META_KEY)
    if choice is not None:
        return choice == "on"
    return file.isatty()


@contextlib.contextmanager
def shown(click_ctx: click.Context | None = None, file: TextIO | None = None) -> Iterator[Progress]:
    """The progress to hand to the work: drawn on stderr when :func:`wanted`, else :data:`SILENT`."""
    file = file or sys.stderr
    if not wanted(click_ctx or click.get_current_context(silent=True), file):
        yield SILENT
        return
    drawn = TerminalProgress(file, file.isatty())
    try:
        yield drawn
    finally:
        drawn.close()


def echo_for(progress: Progress):
    """``click.echo``, or the bar-aware :meth:`TerminalProgress.echo` when ``progress`` is drawn."""
    return progress.echo if isinstance(progress, TerminalProgress) else click.echo
