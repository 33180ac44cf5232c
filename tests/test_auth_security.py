"""Sign-in under attack: cookies behind a TLS proxy, a production secret of real length."""

import re

import pytest

from gisapp import create_app
from gisapp.accounts import Accounts
from gisapp.config import ConfigError, load_config

PASSWORD = "correct horse battery"


@pytest.fixture
def accounts_file(tmp_path):
    accounts = Accounts(tmp_path / "acc.sqlite")
    for name, role in (("viewer1", "viewer"), ("officer1", "officer"), ("admin1", "admin")):
        accounts.add(name, PASSWORD, role)
    return tmp_path / "acc.sqlite"


def make_app(store, accounts_file, **settings):
    return create_app({"STORE": store.url, "ACCOUNTS": str(accounts_file), "TESTING": True, **settings})


@pytest.fixture
def app(demo_store, accounts_file):
    return make_app(demo_store, accounts_file)


def csrf(client, path="/login", **kw):
    page = client.get(path, **kw).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


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
    env = {"GISAPP_ENV": "production", "GISAPP_SECRET_KEY": "x" * 31}
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
