"""Sign-in through the app: sessions, cookies, CSRF, throttling, roles, headers."""

import re

import pytest

from gisapp.accounts import MAX_FAILURES, Accounts
from gisapp.web.app import create_app
from tests.helpers import staff_accounts

PASSWORD = "correct horse battery"


@pytest.fixture
def app(demo_store, tmp_path):
    staff_accounts(tmp_path / "acc.sqlite", (("viewer1", "viewer"), ("officer1", "officer"), ("admin1", "admin")))
    return create_app({"STORE": demo_store.url, "ACCOUNTS": str(tmp_path / "acc.sqlite"), "TESTING": True})


def csrf(client, path="/login"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, name, password=PASSWORD, **kw):
    return client.post("/login", data={"username": name, "password": password, "csrf_token": csrf(client)}, **kw)


def test_sign_in_sets_a_safe_session_cookie(app):
    client = app.test_client()
    r = sign_in(client, "viewer1")
    assert r.status_code == 302 and r.headers["Location"] == "/"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    https = app.test_client()
    r = https.post("/login", base_url="https://localhost",
                   data={"username": "viewer1", "password": PASSWORD,
                         "csrf_token": csrf_https(https)},
                   headers={"Referer": "https://localhost/login"})
    assert r.status_code == 302 and "Secure" in r.headers["Set-Cookie"]


def csrf_https(client):
    page = client.get("/login", base_url="https://localhost").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_wrong_password_is_refused_with_a_message(app):
    r = sign_in(app.test_client(), "viewer1", "wrong password")
    assert r.status_code == 401
    assert "Sai tên đăng nhập hoặc mật khẩu" in r.get_data(as_text=True)


def test_forms_without_csrf_token_are_refused(app):
    client = app.test_client()
    r = client.post("/login", data={"username": "viewer1", "password": PASSWORD})
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
    sign_in(client, "viewer1")
    assert client.post("/logout").status_code == 400


def test_sign_in_is_throttled_per_account(app):
    client = app.test_client()
    for _ in range(MAX_FAILURES):
        assert sign_in(client, "officer1", "wrong password").status_code == 401
    r = sign_in(client, "officer1")
    assert r.status_code == 429
    assert "thử lại sau 15 phút" in r.get_data(as_text=True)
    r = client.post("/login?lang=en", data={"username": "officer1", "password": PASSWORD, "csrf_token": csrf(client)})
    assert "try again in 15 minutes" in r.get_data(as_text=True)


def test_sign_out(app):
    client = app.test_client()
    sign_in(client, "admin1")
    assert client.get("/admin").status_code == 200
    r = client.post("/logout", data={"csrf_token": csrf(client, "/admin")})
    assert r.status_code == 302
    assert client.get("/admin").status_code == 302


@pytest.mark.parametrize("target, expected", [
    ("/wards", "/wards"), ("https://evil.example/x", "/"), ("//evil.example", "/"), ("wards", "/")])
def test_next_only_goes_to_this_site(app, target, expected):
    client = app.test_client()
    r = client.post(f"/login?next={target}",
                    data={"username": "viewer1", "password": PASSWORD, "csrf_token": csrf(client)})
    assert r.headers["Location"] == expected


@pytest.mark.parametrize("who, status", [(None, 302), ("viewer1", 403), ("officer1", 403), ("admin1", 200)])
def test_admin_page_needs_the_admin_role(app, who, status):
    client = app.test_client()
    if who:
        sign_in(client, who)
    r = client.get("/admin")
    assert r.status_code == status
    if status == 302:
        assert r.headers["Location"].startswith("/login?next=/admin")


def test_admin_page_shows_accounts_and_audit_log(app):
    Accounts(app.config["ACCOUNTS"]).audit("officer1", "import", "construction_permits", 12, "<b>x</b>")
    client = app.test_client()
    sign_in(client, "admin1")
    page = client.get("/admin").get_data(as_text=True)
    assert "officer1" in page and "construction_permits" in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


@pytest.mark.parametrize("path", ["/", "/wards", "/login", "/api", "/healthz", "/no-such-page"])
def test_security_headers_everywhere(app, path):
    r = app.test_client().get(path)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "same-origin"
    assert "frame-ancestors 'self'" in r.headers["Content-Security-Policy"]
