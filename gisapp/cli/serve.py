"""``gisapp serve``: the web app, with the tile renderer beside it."""

from __future__ import annotations

import os
import time

import click

from gisapp.cli.context import Context
from gisapp.cli.seed import seed
from gisapp.tiles.watch import Renderer
from gisapp.web.app import create_app, preload
from gisapp.web.server import serve_gunicorn


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to listen on.")
@click.option("--workers", default=0, type=click.IntRange(min=0),
              help="Serve with gunicorn and this many worker processes (0: Flask's development server).")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(min=1),
              help="Threads per gunicorn worker process.")
@click.option("--seed-if-missing", is_flag=True, help="Build the demo store first when it does not exist.")
@click.pass_context
def serve(click_ctx, host: str, port: int, workers: int, threads: int, seed_if_missing: bool):
    """Serve the web app: the development server, or gunicorn with --workers N for production."""
    ctx: Context = click_ctx.obj
    if seed_if_missing:
        click_ctx.invoke(seed, if_missing=True)
    ctx.store().info()  # fail early with a clear message
    app = create_app({"STORE": ctx.config["STORE"]})
    click.echo(f"gisapp on http://{host}:{port}/ (store {ctx.config['STORE']})")
    owner, renderer = os.getpid(), Renderer(ctx.config["STORE"], ctx.config).start()  # started again if it ends
    try:
        if workers:
            # what the workers count over, read once before they fork (they share it): none takes a request
            # before it is there (gunicorn listens once this is done)
            started = time.monotonic()
            preload(app, wait=True)
            click.echo(f"read what the workers count over in {time.monotonic() - started:.1f} s")
            serve_gunicorn(app, host=host, port=port, workers=workers, threads=threads,
                           on_worker_start=lambda: preload(app))
        else:
            preload(app)
            app.run(host=host, port=port, debug=False, use_reloader=False)
    finally:
        if os.getpid() == owner:  # not in a gunicorn worker, which leaves through here too
            renderer.stop()
