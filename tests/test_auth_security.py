"""Sign-in under attack: throttling that cannot be raced or turned against staff, sessions that can be ended,
cookies behind a TLS proxy, a production secret of real length."""

import concurrent.futures
import contextlib
import http.client
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlencode, urlsplit

import pytest
from click.testing import CliRunner

from gisapp import accounts as accounts_module
from gisapp.accounts import MAX_ADDRESS_FAILURES, MAX_FAILURES, Accounts
from gisapp.cli import cli
from gisapp.config import ConfigError, load_config
from gisapp.web.app import create_app
from tests.browser_util import live_server
from tests.helpers import staff_accounts

PASSWORD = "correct horse battery"


@pytest.fixture
def accounts_file(tmp_path):
    return staff_accounts(tmp_path / "acc.sqlite",
                          (("viewer1", "viewer"), ("officer1", "officer"), ("admin1", "admin")))


def make_app(store, accounts_file, **settings):
    return create_app({"STORE": store.url, "ACCOUNTS": str(accounts_file), "TESTING": True, **settings})


@pytest.fixture
def app(demo_store, accounts_file):
    return make_app(demo_store, accounts_file)


@pytest.fixture
def permit(demo_store):
    """``(dossier code, owner name)`` of a dossier whose page shows its owner to staff."""
    row = demo_store.read("construction_permits", limit=1).iloc[0]
    return row["dossier_code"], row["owner_name"]


def csrf(client, path="/login", **kw):
    page = client.get(path, **kw).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, name, password=PASSWORD, address="127.0.0.1"):
    return client.post("/login", data={"username": name, "password": password, "csrf_token": csrf(client)},
                       environ_base={"REMOTE_ADDR": address})


def signed_in(app, name):
    client = app.test_client()
    assert sign_in(client, name).status_code == 302
    return client


def replay(app, cookie):
    """A new client that carries only a copied session cookie."""
    client = app.test_client()
    client.set_cookie("session", cookie)
    return client


def shows_owner(client, permit) -> bool:
    code, owner = permit
    r = client.get(f"/permits/{code}")
    assert r.status_code == 200
    return owner in r.get_data(as_text=True)


# -- throttling: real servers, parallel requests ---------------------------------------------------------

class LoginForm:
    """A browser session's cookie and CSRF token, and POSTs of the sign-in form through a real socket."""

    def __init__(self, base: str):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        status, headers, page = self.request("GET", "/login")
        assert status == 200
        self.cookie = headers["Set-Cookie"].split(";", 1)[0]
        self.token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            conn.request(method, path, body, headers or {})
            r = conn.getresponse()
            return r.status, r.headers, r.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def post(self, name, password, address=None) -> int:
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": self.cookie}
        if address:
            headers["X-Forwarded-For"] = address
        body = urlencode({"username": name, "password": password, "csrf_token": self.token})
        return self.request("POST", "/login", body, headers)[0]

    def parallel(self, n, name, password, address=None) -> Counter:
        """``n`` sign-ins sent at the same moment; the count of each status."""
        start = threading.Barrier(n)

        def one(_):
            start.wait()
            return self.post(name, password, address)

        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            return Counter(pool.map(one, range(n)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(store, accounts_file, **env):
    """``gisapp serve --workers 2`` (gunicorn) on a free port; yields the base URL."""
    port = free_port()
    env = {**os.environ, "GISAPP_ACCOUNTS": str(accounts_file), "GISAPP_TILE_DIR": "none", **env}
    proc = subprocess.Popen([sys.executable, "-m", "gisapp", "--store", store.url, "serve", "--port", str(port),
                             "--workers", "2", "--threads", "8"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


@pytest.mark.slow
def test_parallel_wrong_passwords_on_gunicorn_are_checked_at_most_the_limit(demo_store, accounts_file):
    with gunicorn(demo_store, accounts_file, GISAPP_PROXIES="1") as base:
        form = LoginForm(base)
        statuses = form.parallel(20, "officer1", "wrong password", address="10.1.1.1")
        assert statuses[401] <= MAX_FAILURES and statuses[401] + statuses[429] == 20, statuses
        assert form.post("officer1", PASSWORD, address="10.1.1.1") == 429
        # The owner, elsewhere, is not locked out by someone else's failures.
        assert form.post("officer1", PASSWORD, address="10.2.2.2") == 302


def test_parallel_wrong_passwords_on_the_development_server_are_checked_at_most_the_limit(app):
    with live_server(app) as base:
        statuses = LoginForm(base).parallel(20, "officer1", "wrong password")
    assert statuses[401] <= MAX_FAILURES and statuses[401] + statuses[429] == 20, statuses


def test_unknown_names_from_one_address_do_not_lock_out_a_real_account(app):
    client = app.test_client()
    for i in range(2 * MAX_FAILURES):
        assert sign_in(client, f"guess{i}", "wrong password", address="10.0.0.5").status_code == 401
    assert sign_in(client, "viewer1", address="10.0.0.5").status_code == 302


def test_failures_from_one_address_do_not_lock_the_account_elsewhere(app):
    client = app.test_client()
    for _ in range(MAX_FAILURES):
        assert sign_in(client, "viewer1", "wrong password", address="10.0.0.6").status_code == 401
    assert sign_in(client, "viewer1", address="10.0.0.6").status_code == 429
    assert sign_in(app.test_client(), "viewer1", address="10.0.0.7").status_code == 302


def test_success_resets_the_count(app):
    client = app.test_client()
    for _ in range(MAX_FAILURES - 1):
        sign_in(client, "viewer1", "wrong password", address="10.0.0.8")
    assert sign_in(client, "viewer1", address="10.0.0.8").status_code == 302
    for _ in range(MAX_FAILURES - 1):
        assert sign_in(client, "viewer1", "wrong password", address="10.0.0.8").status_code == 401
    assert sign_in(client, "viewer1", address="10.0.0.8").status_code == 302


def test_one_address_has_a_ceiling_over_all_names(app, accounts_file):
    # MAX_ADDRESS_FAILURES real failures would cost as many password hashes; their rows are written directly.
    with sqlite3.connect(accounts_file) as con:
        rows = [(f"2099-01-01T00:00:{i % 60:02d}+00:00", f"guess{i}", "10.0.0.9") for i in range(MAX_ADDRESS_FAILURES)]
        con.executemany("INSERT INTO sign_in_failures (at, username, address) VALUES (?, ?, ?)", rows)
    assert sign_in(app.test_client(), "viewer1", address="10.0.0.9").status_code == 429
    assert sign_in(app.test_client(), "viewer1", address="10.0.0.10").status_code == 302


def test_forwarded_addresses_are_ignored_unless_proxies_are_configured(demo_store, accounts_file):
    app = make_app(demo_store, accounts_file)  # GISAPP_PROXIES=0: a client could name any address
    client = app.test_client()
    for i in range(MAX_FAILURES):
        r = client.post("/login", data={"username": "viewer1", "password": "wrong password",
                                        "csrf_token": csrf(client)}, headers={"X-Forwarded-For": f"10.3.3.{i}"})
        assert r.status_code == 401
    r = client.post("/login", data={"username": "viewer1", "password": PASSWORD, "csrf_token": csrf(client)},
                    headers={"X-Forwarded-For": "10.3.3.99"})
    assert r.status_code == 429


def test_unknown_names_cost_a_password_hash_like_real_ones(accounts_file, monkeypatch):
    checked = []
    real_check = accounts_module.check_password_hash

    def counting_check(pwhash, password):
        checked.append(pwhash.split("$", 1)[0])
        return real_check(pwhash, password)

    monkeypatch.setattr(accounts_module, "check_password_hash", counting_check)
    accounts = Accounts(accounts_file)
    assert accounts.authenticate("viewer1", "wrong password", "10.0.0.1") is None
    assert accounts.authenticate("nobody", "wrong password", "10.0.0.1") is None
    assert accounts.authenticate("nobody", PASSWORD, "10.0.0.1") is None
    assert len(checked) == 3 and len(set(checked)) == 1, checked  # the same method and cost every time


# -- sessions that end -----------------------------------------------------------------------------------

def test_a_copied_cookie_dies_with_logout(app, permit):
    client = signed_in(app, "viewer1")
    copy = client.get_cookie("session").value
    assert shows_owner(replay(app, copy), permit)
    assert client.post("/logout", data={"csrf_token": csrf(client)}).status_code == 302
    assert not shows_owner(replay(app, copy), permit)
    assert ("viewer1", "signed out") in [(e.username, e.action) for e in Accounts(app.config["ACCOUNTS"]).audit_log()]


def test_logout_ends_only_that_session(app, permit):
    laptop, phone = signed_in(app, "viewer1"), signed_in(app, "viewer1")
    laptop.post("/logout", data={"csrf_token": csrf(laptop)})
    assert not shows_owner(laptop, permit) and shows_owner(phone, permit)


@pytest.mark.parametrize("command", [["set-password", "viewer1", "--password", "another long password"],
                                     ["set-role", "viewer1", "officer"], ["remove", "viewer1"],
                                     ["sign-out", "viewer1"]])
def test_a_copied_cookie_dies_with_account_changes_from_the_cli(app, permit, monkeypatch, command):
    client = signed_in(app, "viewer1")
    copy = client.get_cookie("session").value
    other = signed_in(app, "officer1")
    monkeypatch.setenv("GISAPP_ACCOUNTS", app.config["ACCOUNTS"])
    r = CliRunner().invoke(cli, ["users", *command])
    assert r.exit_code == 0, r.output
    assert not shows_owner(replay(app, copy), permit) and not shows_owner(client, permit)
    assert shows_owner(other, permit)


def test_sign_out_from_the_cli(app, monkeypatch):
    signed_in(app, "viewer1"), signed_in(app, "viewer1")
    monkeypatch.setenv("GISAPP_ACCOUNTS", app.config["ACCOUNTS"])
    r = CliRunner().invoke(cli, ["users", "sign-out", "viewer1"])
    assert r.exit_code == 0 and "2 sessions of viewer1 ended" in r.output
    r = CliRunner().invoke(cli, ["users", "sign-out", "nobody"])
    assert r.exit_code == 1 and "no user 'nobody'" in r.output
    entry = Accounts(app.config["ACCOUNTS"]).audit_log()[0]
    assert (entry.action, entry.detail) == ("signed out everywhere", "viewer1 from the command line")


def test_admin_signs_an_account_out_everywhere(app, permit):
    laptop, phone = signed_in(app, "viewer1"), signed_in(app, "viewer1")
    copy = laptop.get_cookie("session").value
    admin = signed_in(app, "admin1")
    page = admin.get("/admin").get_data(as_text=True)
    assert 'action="/admin/sign-out"' in page and 'value="viewer1"' in page
    r = admin.post("/admin/sign-out", data={"username": "viewer1", "csrf_token": csrf(admin, "/admin")})
    assert r.status_code == 302 and r.headers["Location"] == "/admin"
    for client in (laptop, phone, replay(app, copy)):
        assert not shows_owner(client, permit)
    assert admin.get("/admin").status_code == 200  # the admin's own session goes on
    entry = Accounts(app.config["ACCOUNTS"]).audit_log()[0]
    assert (entry.username, entry.action, entry.detail) == ("admin1", "signed out everywhere", "viewer1")


def test_only_admins_sign_others_out(app, permit):
    victim = signed_in(app, "viewer1")
    officer = signed_in(app, "officer1")
    r = officer.post("/admin/sign-out", data={"username": "viewer1", "csrf_token": csrf(officer)})
    assert r.status_code == 403 and shows_owner(victim, permit)
    admin = signed_in(app, "admin1")
    r = admin.post("/admin/sign-out", data={"username": "nobody", "csrf_token": csrf(admin)})
    assert r.status_code == 400 and "no user" in r.get_data(as_text=True)


# -- cookies behind a TLS proxy, secret length ---------------------------------------------------------

def login_cookie(app, **headers) -> str:
    client = app.test_client()
    token = csrf(client, headers=headers)
    r = client.post("/login", data={"username": "viewer1", "password": PASSWORD, "csrf_token": token},
                    headers={"Referer": "https://localhost/login", **headers})
    assert r.status_code == 302, r.get_data(as_text=True)
    return r.headers["Set-Cookie"]


def test_session_cookie_is_secure_behind_a_tls_proxy(demo_store, accounts_file):
    behind = make_app(demo_store, accounts_file, PROXIES=1)
    assert "Secure" in login_cookie(behind, **{"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.0.0.1"})
    assert "Secure" not in login_cookie(behind)
    # Without a proxy configured, anyone could claim HTTPS: the header is not believed.
    direct = make_app(demo_store, accounts_file)
    assert "Secure" not in login_cookie(direct, **{"X-Forwarded-Proto": "https"})


def test_secure_cookies_can_be_forced(demo_store, accounts_file):
    assert "Secure" in login_cookie(make_app(demo_store, accounts_file, SECURE_COOKIES="always"))


def test_production_needs_a_long_secret_key():
    env = {"GISAPP_ENV": "production", "GISAPP_SECRET_KEY": "x" * 31, "GISAPP_BASE_URL": "https://gis.example.vn"}
    with pytest.raises(ConfigError, match="GISAPP_SECRET_KEY must be at least 32 bytes .* has 31"):
        load_config(environ=env)
    assert load_config(environ={**env, "GISAPP_SECRET_KEY": "x" * 32})["SECRET_KEY"] == "x" * 32
    assert load_config(environ={"GISAPP_SECRET_KEY": "short"})["SECRET_KEY"] == "short"  # development


@pytest.mark.parametrize("env, message", [({"GISAPP_PROXIES": "one"}, "GISAPP_PROXIES must be a whole number"),
                                          ({"GISAPP_PROXIES": "-1"}, "GISAPP_PROXIES must be 0 or more"),
                                          ({"GISAPP_SECURE_COOKIES": "yes"}, "GISAPP_SECURE_COOKIES must be")])
def test_bad_proxy_settings_are_refused(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(environ=env)
