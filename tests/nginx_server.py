"""The real nginx for the deployment tests, run as the test's own user with everything in a temporary folder.

:func:`start_nginx` runs ``nginx -p DIR -c nginx.conf -g 'daemon off;'``
with a configuration that wraps the sample ``deploy/nginx.conf`` (its ports,
host name and certificate files replaced) in an ``http`` block whose pid
file, error log, access log (with the upstream that answered each request)
and temporary folders are all in DIR.  The sample listens on a free high
port for HTTP and another for HTTPS (a self-signed certificate made with
``openssl``).  When nginx or openssl is missing the test skips with the
reason, or fails when ``CI=true`` (as the PostGIS and browser fixtures do).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pg_server import free_port

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "deploy" / "nginx.conf"
#: The sample's lines the test replaces (each must be there: the sample cannot drift from what is tested).
SAMPLE_UPSTREAMS = ("server 127.0.0.1:8001 ", "server 127.0.0.1:8002 ")


def find_nginx() -> str:
    """The nginx executable (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        unavailable("nginx not found (apt-get install nginx)")
    if shutil.which("openssl") is None:
        unavailable("openssl not found (apt-get install openssl)")
    return found


def unavailable(reason: str):
    """Skip with ``reason``, or fail when running in CI."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"nginx tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"nginx tests skipped: {reason}")


def sample_config(backends: list[int], http_port: int, https_port: int, cert: Path, key: Path) -> str:
    """``deploy/nginx.conf`` for this machine: the backends' ports, local listen addresses, the test certificate."""
    text = SAMPLE.read_text()
    replacements = [
        (SAMPLE_UPSTREAMS[0], f"server 127.0.0.1:{backends[0]} "),
        (SAMPLE_UPSTREAMS[1], f"server 127.0.0.1:{backends[1]} "),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;"),
        ("/etc/ssl/certs/gis.example.vn.pem", str(cert)),
        ("/etc/ssl/private/gis.example.vn.key", str(key)),
    ]
    for old, new in replacements:
        assert text.count(old) == 1, f"deploy/nginx.conf no longer has {old!r} once: update tests/nginx_server.py"
        text = text.replace(old, new)
    return text


@dataclass
class Nginx:
    """A running nginx: its ports, folder and process."""

    root: Path
    http_port: int
    https_port: int
    proc: subprocess.Popen

    @property
    def cert(self) -> str:
        """The proxy's self-signed certificate: what a client verifies it with."""
        return str(self.root / "cert.pem")

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def upstreams(self) -> list[tuple[str, str]]:
        """``(upstream address, request line)`` of every request so far (the access log)."""
        log = self.root / "logs" / "access.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [tuple(line.split(" ", 1)) for line in lines]  # type: ignore[misc]

    def error_log(self) -> str:
        path = self.root / "logs" / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_nginx(root: Path, backends: list[int]) -> Nginx:
    """nginx serving ``deploy/nginx.conf`` in front of the app servers on ``backends`` (two ports)."""
    binary = find_nginx()
    (root / "logs").mkdir(parents=True, exist_ok=True)
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    http_port, https_port = free_port(), free_port()
    # As root nginx would hand its workers to `nobody`, who cannot enter the test's private folder.
    user = "user root;" if os.geteuid() == 0 else ""
    conf = f"""
{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/logs/error.log warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    log_format upstream '$upstream_addr $status $request';
    access_log {root}/logs/access.log upstream;
    client_body_temp_path {root}/client_body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
{sample_config(backends, http_port, https_port, cert, key)}
}}
"""
    (root / "nginx.conf").write_text(re.sub(r"^ *include /etc/nginx/mime.types;\n", "", conf, flags=re.M)
                                     if not Path("/etc/nginx/mime.types").exists() else conf)
    check = subprocess.run([binary, "-t", "-p", str(root), "-c", str(root / "nginx.conf")], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([binary, "-p", str(root), "-c", str(root / "nginx.conf"), "-g", "daemon off;"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Nginx(root, http_port, https_port, proc)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", https_port), timeout=1):
                return server
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"nginx did not start: {server.error_log()[-2000:]}") from None
            time.sleep(0.1)
