"""The ``gisapp`` command line: seed, serve, layers, and the commands of each feature."""

from __future__ import annotations

import os
import time

import click

from gisapp.config import SETTINGS, ConfigError, load_config
from gisapp.store import StoreError, open_store


class Context:
    """What every command shares: the settings (with ``--store`` applied)."""

    def __init__(self, store: str | None):
        self.config = load_config({"STORE": store} if store else None)

    def store(self, must_exist: bool = True):
        """The configured store."""
        return open_store(self.config["STORE"], must_exist=must_exist)


pass_ctx = click.make_pass_decorator(Context)


class StoreErrorsAsMessages(click.Group):
    """A group that reports store and settings errors as one line and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (StoreError, ConfigError) as err:
            raise StoreFailure(str(err)) from None


class StoreFailure(click.ClickException):
    """A store error, shown as ``Error: …`` with exit status 2."""

    exit_code = 2


@click.group(cls=StoreErrorsAsMessages, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--store", metavar="PATH|URL", help=f"Store to use (default: ${SETTINGS['STORE'][0]} or layers/camle.gpkg).")
@click.pass_context
def cli(ctx, store):
    """gisapp: construction-permit and sidewalk-permit GIS for a district."""
    ctx.obj = Context(store)


@cli.command()
@click.option("--if-missing", is_flag=True, help="Do nothing when the store already exists.")
@click.option("--analyze/--no-analyze", default=True, show_default=True,
              help="Run the overlap analysis on the demo data afterwards (its findings layer).")
@click.pass_context
def seed(click_ctx, if_missing: bool, analyze: bool):
    """Build the Cẩm Lệ demo data into the store (replacing its layers)."""
    from gisapp import demo

    ctx: Context = click_ctx.obj
    target = ctx.store(must_exist=False)
    if if_missing and _exists(target):
        click.echo(f"store {target.url} already exists; not seeding")
        return
    started = time.perf_counter()
    frames, meta = demo.build(ctx.config["CALENDAR"])
    target.write(frames, mode="replace", meta=meta)
    counts = ", ".join(f"{name} {len(frame)}" for name, frame in frames.items())
    click.echo(f"seeded {target.url}: {counts} in {time.perf_counter() - started:.1f} s")
    if analyze:
        from gisapp.analysis_cli import analyze as analyze_command

        click_ctx.invoke(analyze_command)


def _exists(store) -> bool:
    try:
        store.info()
        return True
    except StoreError:
        return False


@cli.command()
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
    from gisapp import create_app

    from gisapp.tiles_cli import start_watcher, stop_watcher

    app = create_app({"STORE": ctx.config["STORE"]})
    click.echo(f"gisapp on http://{host}:{port}/ (store {ctx.config['STORE']})")
    owner, watcher = os.getpid(), start_watcher(ctx.config["STORE"], ctx.config)
    try:
        if workers:
            from gisapp.server import serve_gunicorn

            serve_gunicorn(app, host=host, port=port, workers=workers, threads=threads)
        else:
            app.run(host=host, port=port, debug=False, use_reloader=False)
    finally:
        if os.getpid() == owner:  # not in a gunicorn worker, which leaves through here too
            stop_watcher(watcher)


@cli.command()
@pass_ctx
def layers(ctx: Context):
    """List the store's layers: count, CRS, extent, and the data's as-of date."""
    store = ctx.store()
    click.echo(f"store: {store.url}")
    click.echo(f"as of: {store.meta().get('as_of', '(not set)')}")
    click.echo(f"{'layer':<22} {'count':>8}  {'crs':<10} extent (minx, miny, maxx, maxy)")
    for info in store.info():
        extent = "—" if info.extent is None else ", ".join(f"{v:.1f}" for v in info.extent)
        click.echo(f"{info.name:<22} {info.count:>8}  {info.crs:<10} {extent}")


@cli.command("schema")
def schema_():
    """Print the layer definitions (fields, types, labels, codes) as Markdown."""
    from gisapp.schema import describe_markdown

    click.echo(describe_markdown())


def _register_feature_commands() -> None:
    """Commands that live with their feature modules."""
    for module_name, names in FEATURE_COMMANDS:
        module = __import__(module_name, fromlist=names)
        for name in names:
            cli.add_command(getattr(module, name))


#: (module, [click commands]) added to the group; each feature adds its line.
FEATURE_COMMANDS: list[tuple[str, list[str]]] = [
    ("gisapp.db_cli", ["db"]),
    ("gisapp.accounts_cli", ["users"]),
    ("gisapp.exporting_cli", ["export"]),
    ("gisapp.importing_cli", ["import_"]),
    ("gisapp.analysis_cli", ["analyze"]),
    ("gisapp.tiles_cli", ["tiles_group"]),
]


def main(argv=None) -> None:
    """Entry point of the ``gisapp`` console script."""
    cli.main(args=argv, prog_name="gisapp")


_register_feature_commands()

