"""The production server: gunicorn, N worker processes with threads, serving one app."""

from __future__ import annotations

import gc
from collections.abc import Callable

from gunicorn.app.base import BaseApplication

#: The workers' garbage collector: a young-generation collection after this many more container objects than
#: were freed (Python's default is 700), the older ones as by default.  An items page holds ~3,000 at once (its
#: rows, their dicts): at 700 a page paid ~3.5 collections of the objects it was building (~0.5 ms of its
#: 8-10 ms at 1M), and every few hundred pages a full collection of everything the process had loaded (~100 ms
#: holding the interpreter lock, every request of the worker waiting). The app's own objects are frozen
#: before the workers fork (:func:`gc.freeze`: never collected, and their pages stay shared).
GC_THRESHOLD = (20_000, 10, 10)


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


def serve_gunicorn(app, *, host: str, port: int, workers: int, threads: int = 4,
                   on_worker_start: Callable[[], None] | None = None) -> None:
    """Serve ``app`` until stopped: ``workers`` processes (forked after the app is built), ``threads`` each.

    Processes use both cores where threads of one process share Python's
    lock; each request still opens the store it needs, so workers share
    nothing but the file or database.  ``on_worker_start`` runs in each
    worker process once it is forked (e.g. to read what it counts over in
    the background).  The access log line ends with the worker's process id
    and the request's time in it in microseconds (``%(p)s %(D)s``), from its
    parsing to its last byte written: the server's share of a client's
    latency, and how the requests were spread over the workers.  The workers' garbage collector is tuned
    for pages of thousands of rows (:data:`GC_THRESHOLD`).
    """
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "timeout": 120,
        "graceful_timeout": 10,
        # no keep-alive: each request is a new connection, accepted by a worker with a free thread (a kept
        # connection stays with the worker that accepted it: 8 clients' connections were measured 6 to 2 on
        # two workers at 1M, the busier one's p95 the run's); behind a reverse proxy they are new anyway
        "keepalive": 0,
        "accesslog": "-",
        "access_log_format": '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(p)s %(D)s',
        "errorlog": "-",
        "proc_name": "gisapp",
    }
    if on_worker_start is not None:
        options["post_worker_init"] = lambda worker: on_worker_start()
    # what the app loaded lives as long as the workers: out of the collector's way (see GC_THRESHOLD)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    _Gunicorn(app, options).run()
