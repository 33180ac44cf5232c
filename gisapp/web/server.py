"""The production server: gunicorn, N worker processes with threads, serving one app."""

from __future__ import annotations

from gunicorn.app.base import BaseApplication


class _Gunicorn(BaseApplication):
    """gunicorn running an app object built by :func:`gisapp.web.app.create_app` (no import string)."""

    def __init__(self, app, options: dict):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.application


def serve_gunicorn(app, *, host: str, port: int, workers: int, threads: int = 4) -> None:
    """Serve ``app`` until stopped: ``workers`` processes (forked after the app is built), ``threads`` each.

    Processes use both cores where threads of one process share Python's
    lock; each request still opens the store it needs, so workers share
    nothing but the file or database.
    """
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 120,
        "graceful_timeout": 10,
        "accesslog": "-",
        "errorlog": "-",
        "proc_name": "gisapp",
    }
    _Gunicorn(app, options).run()
