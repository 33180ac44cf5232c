"""A private PostgreSQL + PostGIS server for the tests and the benchmark.

``initdb`` refuses to run as root, so as root every server command runs as
the ``postgres`` user (``runuser -u postgres --``).  The data directory is a
fresh temporary directory, the server listens on 127.0.0.1 only, on a free
port, with its socket in that directory, and trusts local connections.

:func:`server` starts one server per process on first use and stops it at
exit; the ``pg_server`` fixture hands it to tests.  When PostgreSQL or
PostGIS is not installed, tests skip with the reason — or fail when the
environment variable ``CI`` is ``true``, where they must run.
"""

from __future__ import annotations

import atexit
import glob
import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TEMPLATE_DB = "gisapp_template"
#: Settings for a throw-away server: no durability, modest memory.
TEST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                 "max_connections": "200", "shared_buffers": "128MB"}


class ServerUnavailable(RuntimeError):
    """PostgreSQL or PostGIS is not installed here; the message says what is missing."""


def find_bindir() -> Path:
    """The bin directory of the newest installed PostgreSQL that has PostGIS."""
    if os.environ.get("GISAPP_PG_BINDIR"):
        return Path(os.environ["GISAPP_PG_BINDIR"])
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name))
    if not dirs:
        raise ServerUnavailable("PostgreSQL server binaries not found (apt-get install postgresql)")
    for d in reversed(dirs):
        version = Path(d).parent.name
        if glob.glob(f"/usr/share/postgresql/{version}/extension/postgis.control"):
            return Path(d)
    version = Path(dirs[-1]).parent.name
    raise ServerUnavailable(f"PostGIS is not installed for PostgreSQL {version} "
                            f"(apt-get install postgresql-{version}-postgis-3)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    """A running private server: its port, directory and how to reach it."""

    bindir: Path
    root: Path
    port: int = 0
    settings: dict = field(default_factory=dict)
    _as_postgres: bool = field(default=os.geteuid() == 0)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _drops: queue.SimpleQueue | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres") -> str:
        """A ``postgresql://`` URL of database ``dbname`` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _run(self, *args, check=True, timeout=120):
        cmd = [str(self.bindir / args[0]), *map(str, args[1:])]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=timeout, cwd=self.root)

    def start(self) -> PgServer:
        """``initdb`` then ``pg_ctl start`` on a free port; then the template database."""
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o700)
        try:
            self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                      "--locale=C.UTF-8", "--no-sync")
        except subprocess.CalledProcessError as err:
            raise RuntimeError(f"initdb failed: {err.stderr or err.stdout}") from None
        for attempt in range(5):
            self.port = free_port()
            opts = [f"-p {self.port}", f"-k {self.root}", "-c listen_addresses=127.0.0.1"]
            opts += [f"-c {k}={v}" for k, v in self.settings.items()]
            proc = self._run("pg_ctl", "start", "-w", "-t", "60", "-D", self.data,
                             "-l", self.root / "server.log", "-o", " ".join(opts), check=False)
            if proc.returncode == 0:
                break
            if attempt == 4 or "could not bind" not in self.log():
                raise RuntimeError(f"pg_ctl start failed: {proc.stderr}\n{self.log()[-2000:]}")
        self._create_template()
        return self

    def log(self) -> str:
        """The server log so far."""
        try:
            return (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""

    def connect(self, dbname: str = "postgres"):
        """An autocommit psycopg connection to ``dbname``."""
        import psycopg

        return psycopg.connect(self.url(dbname), autocommit=True, connect_timeout=10)

    def _create_template(self) -> None:
        with self.connect() as con:
            con.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        with self.connect(TEMPLATE_DB) as con:
            con.execute("CREATE EXTENSION postgis")

    def create_database(self, prefix: str = "t", *, postgis: bool = True, template: str | None = None) -> str:
        """A new empty database (with PostGIS unless ``postgis=False``), or a copy of database ``template``; its
        name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        template = template or (TEMPLATE_DB if postgis else "template0")
        with self._lock, self.connect() as con:  # a template must have no other session
            con.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending its sessions: in a thread of its own, so that a test's teardown does not wait
        for it (nothing uses a database after its test; the server and its files go at the end anyway)."""
        with self._lock:
            if self._drops is None:
                self._drops = queue.SimpleQueue()
                threading.Thread(target=self._dropper, args=(self._drops,), daemon=True,
                                 name="pg-drop").start()
        self._drops.put(name)

    def _dropper(self, names: queue.SimpleQueue) -> None:
        while True:
            name = names.get()
            try:
                with self.connect() as con:
                    con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            except Exception:  # the server stopped at the session's end: its files go with it
                pass

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory."""
        if self.data.exists():
            self._run("pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def start_server(settings: dict | None = None) -> PgServer:
    """A new private server (the caller stops it)."""
    bindir = find_bindir()
    root = Path(tempfile.mkdtemp(prefix="gisapp-pg-"))
    server = PgServer(bindir, root, settings=dict(settings or {}))
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise


_SERVER: PgServer | None = None
_SERVER_LOCK = threading.Lock()


def server() -> PgServer:
    """The tests' server: started on first use, stopped when the process exits.

    Skips the calling test when PostgreSQL/PostGIS is missing, fails instead
    when ``CI=true``.
    """
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None:
            try:
                _SERVER = start_server(TEST_SETTINGS)
            except ServerUnavailable as err:
                unavailable(str(err))
            atexit.register(_stop_at_exit)
        return _SERVER


def unavailable(reason: str):
    """Skip with ``reason``, or fail when running in CI."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostGIS tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"PostGIS tests skipped: {reason}")


def _stop_at_exit() -> None:
    global _SERVER
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None


@pytest.fixture(scope="session")
def pg_server():
    """The private PostgreSQL/PostGIS server, stopped at the end of the session."""
    srv = server()
    yield srv
    _stop_at_exit()


@pytest.fixture
def pg_url(pg_server):
    """A fresh database with PostGIS for one test; dropped afterwards."""
    name = pg_server.create_database()
    yield pg_server.url(name)
    _close_store_pools(pg_server.url(name))
    pg_server.drop_database(name)


def _close_store_pools(url: str) -> None:
    try:
        from gisapp.store import postgis
    except ImportError:  # pragma: no cover
        return
    postgis.close_pool(url)


def wait_until(predicate, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False
