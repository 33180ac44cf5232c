"""``gisapp seed``: build the Cẩm Lệ demo data into the store, then run the overlap analysis."""

from __future__ import annotations

import time

import click

from gisapp.cli.analyze import analyze as analyze_command
from gisapp.cli.context import Context
from gisapp.demo import build as demo
from gisapp.demo.timeline import demo_history


@click.command()
@click.option("--if-missing", is_flag=True, help="Do nothing when the store already exists.")
@click.option("--analyze/--no-analyze", default=True, show_default=True,
              help="Run the overlap analysis on the demo data afterwards (its findings layer).")
@click.pass_context
def seed(click_ctx, if_missing: bool, analyze: bool):
    """Build the Cẩm Lệ demo data into the store (replacing its layers)."""
    ctx: Context = click_ctx.obj
    store = ctx.store(must_exist=False)
    if if_missing and store.exists():
        click.echo(f"store {store.url} already exists; not seeding")
        return
    started = time.perf_counter()
    frames, meta = demo.build(ctx.config["CALENDAR"])
    store.write(frames, mode="replace", meta=meta, history=demo_history(frames, ctx.config["CALENDAR"]))
    counts = ", ".join(f"{name} {len(frame)}" for name, frame in frames.items())
    click.echo(f"seeded {store.url}: {counts} in {time.perf_counter() - started:.1f} s")
    if analyze:
        click_ctx.invoke(analyze_command)
