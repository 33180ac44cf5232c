"""Accounts: hashing, roles, throttling, audit log, and the ``gisapp users`` commands."""

import datetime as dt
import sqlite3

import pytest
from click.testing import CliRunner

from gisapp.accounts import MAX_FAILURES, WINDOW, AccountError, Accounts, Throttled
from gisapp.cli import cli

PASSWORD = "correct horse battery"


@pytest.fixture
def accounts(tmp_path):
    return Accounts(tmp_path / "accounts.sqlite")


def test_passwords_are_salted_slow_hashes(accounts, tmp_path):
    accounts.add("lan", PASSWORD, "officer")
    accounts.add("minh", PASSWORD, "viewer")
    hashes = [h for (h,) in sqlite3.connect(tmp_path / "accounts.sqlite").execute("SELECT password_hash FROM users")]
    assert all(h.startswith("scrypt:") for h in hashes)
    assert hashes[0] != hashes[1] and PASSWORD not in hashes[0]
    assert accounts.authenticate("lan", PASSWORD, "10.0.0.1").role == "officer"
    assert accounts.authenticate("lan", "wrong password!", "10.0.0.1") is None
    assert accounts.authenticate("nobody", PASSWORD, "10.0.0.1") is None


@pytest.mark.parametrize(
    "args, message",
    [
        (("x", PASSWORD, "viewer"), "user names are"),
        (("lan lan", PASSWORD, "viewer"), "user names are"),
        (("lan", "short", "viewer"), "at least 10 characters"),
        (("lan", PASSWORD, "root"), "unknown role 'root'"),
    ],
)
def test_bad_accounts_are_refused(accounts, args, message):
    with pytest.raises(AccountError, match=message):
        accounts.add(*args)


def test_duplicate_and_unknown_users(accounts):
    accounts.add("lan", PASSWORD)
    with pytest.raises(AccountError, match="already exists"):
        accounts.add("lan", PASSWORD)
    for call in (lambda: accounts.remove("x1"), lambda: accounts.set_role("x1", "admin"),
                 lambda: accounts.set_password("x1", PASSWORD)):
        with pytest.raises(AccountError, match="no user 'x1'"):
            call()


def test_roles_rank():
    from gisapp.accounts import User

    assert User("a", "admin").can("officer") and User("a", "officer").can("viewer")
    assert not User("a", "viewer").can("officer") and not User("a", "officer").can("admin")


def test_throttling_per_account_and_address(accounts):
    accounts.add("lan", PASSWORD)
    now = dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.UTC)
    for _ in range(MAX_FAILURES):
        assert accounts.authenticate("lan", "bad password", "10.0.0.1", now) is None
    assert accounts.throttled("lan", "10.0.0.1", now)
    # Even the right password is refused while throttled...
    with pytest.raises(Throttled):
        accounts.authenticate("lan", PASSWORD, "10.0.0.1", now)
    # ...but not from another address (the failures may be someone else's), nor once the window has passed.
    assert not accounts.throttled("lan", "10.9.9.9", now)
    later = now + WINDOW + dt.timedelta(seconds=1)
    assert accounts.authenticate("lan", PASSWORD, "10.0.0.1", later).username == "lan"


def test_sessions_expire_and_die_with_their_account(accounts):
    accounts.add("lan", PASSWORD)
    now = dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.UTC)
    token = accounts.start_session("lan", dt.timedelta(hours=8), now)
    assert accounts.session_user(token, now).username == "lan"
    assert accounts.session_user(token, now + dt.timedelta(hours=8)) is None
    assert accounts.session_counts(now) == {"lan": 1}
    # A new account of the same name does not inherit the old one's sessions.
    accounts.remove("lan")
    accounts.add("lan", PASSWORD)
    assert accounts.session_user(token, now) is None
    assert token not in accounts.path.read_bytes().decode("latin-1")  # only its hash is kept


def test_audit_log_newest_first(accounts):
    accounts.audit("lan", "import", "construction_permits", 120, "upsert from ds.xlsx")
    accounts.audit("minh", "import", "wards", 6)
    log = accounts.audit_log()
    assert [(e.username, e.layer, e.rows) for e in log] == [("minh", "wards", 6), ("lan", "construction_permits", 120)]


def test_users_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("GISAPP_ACCOUNTS", str(tmp_path / "acc.sqlite"))
    run = CliRunner().invoke
    r = run(cli, ["users", "add", "lan", "--role", "officer"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert r.exit_code == 0 and "added lan (officer)" in r.output
    assert run(cli, ["users", "add", "lan", "--password", PASSWORD]).exit_code == 1
    assert run(cli, ["users", "set-role", "lan", "admin"]).exit_code == 0
    assert run(cli, ["users", "set-password", "lan", "--password", "another long one"]).exit_code == 0
    assert run(cli, ["users", "list"]).output == "lan\tadmin\n"
    r = run(cli, ["users", "add", "x", "--password", "short"])
    assert r.exit_code == 1 and "user names are" in r.output
    assert run(cli, ["users", "remove", "lan"]).exit_code == 0
    r = run(cli, ["users", "remove", "lan"])
    assert r.exit_code == 1 and "no user 'lan'" in r.output
    actions = [e.action for e in Accounts(tmp_path / "acc.sqlite").audit_log()]
    assert actions == ["user removed", "password changed", "role changed", "user added"]
