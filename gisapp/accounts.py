"""Staff accounts, roles, sign-in throttling, sessions and the audit log.

Kept in a small SQLite file of its own (``GISAPP_ACCOUNTS``), apart from the
layer store, so that a layer import never touches accounts and an account
change never rewrites the layers.  Passwords are stored as salted scrypt
hashes (werkzeug).  A session is a row here too, found by the hash of the
random token its cookie carries: logging out, a new password, a new role, a
removal or an admin's "sign out everywhere" delete rows, and every copy of
those cookies is then worthless.  No Flask here: views and the CLI call these
functions.
"""

from __future__ import annotations

import builtins
import contextlib
import datetime as dt
import functools
import hashlib
import re
import secrets
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

#: ``inspector`` records inspections (with photos) but may not upload or import; officers may do both.
ROLES = ("viewer", "inspector", "officer", "admin")
#: What each role may do; a role may do everything the roles before it may.
RANK = {role: i for i, role in enumerate(ROLES)}
MIN_PASSWORD = 10
#: Sign-in throttling: at most this many failures per window for one account from one address...
MAX_FAILURES = 5
#: ...and this many from one address over all names: behind a reverse proxy every member of staff shares its
#: address, and an office does not mistype 100 passwords in 15 minutes, while a guesser trying many names stops.
MAX_ADDRESS_FAILURES = 100
WINDOW = dt.timedelta(minutes=15)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sign_in_failures (
    at TEXT NOT NULL,
    username TEXT NOT NULL,
    address TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_failures_at ON sign_in_failures (at);
CREATE INDEX IF NOT EXISTS ix_failures_address ON sign_in_failures (address, at);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_sessions_username ON sessions (username);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    username TEXT,
    action TEXT NOT NULL,
    layer TEXT,
    rows INTEGER,
    detail TEXT
);
"""


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message is for the user."""


class Throttled(AccountError):
    """Too many failed sign-ins lately for this account from this address, or from this address."""


@dataclass(frozen=True)
class User:
    """A signed-in member of staff."""

    username: str
    role: str

    def can(self, role: str) -> bool:
        """True when this user's role is ``role`` or above."""
        return RANK[self.role] >= RANK[role]


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log."""

    at: str
    username: str | None
    action: str
    layer: str | None
    rows: int | None
    detail: str | None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


class Accounts:
    """The accounts file at ``path`` (created on first use)."""

    def __init__(self, path):
        self.path = Path(path)

    @contextlib.contextmanager
    def _db(self, immediate: bool = False):
        """A connection in a transaction; ``immediate`` takes the write lock at once (other processes wait)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=10)
        try:
            con.executescript(_SCHEMA)
            with con:
                if immediate:
                    con.execute("BEGIN IMMEDIATE")
                yield con
        finally:
            con.close()

    # -- users -------------------------------------------------------------

    def add(self, username: str, password: str, role: str = "viewer") -> User:
        """Create an account; :class:`AccountError` if the name is taken or the input is bad."""
        username = _check_username(username)
        _check_role(role)
        _check_password(password)
        with self._db() as con:
            try:
                con.execute("INSERT INTO users VALUES (?, ?, ?, ?)",
                            (username, generate_password_hash(password), role, _now().isoformat()))
            except sqlite3.IntegrityError:
                raise AccountError(f"user {username!r} already exists") from None
        return User(username, role)

    def remove(self, username: str) -> None:
        """Delete an account, and end its sessions."""
        with self._db() as con:
            if not con.execute("DELETE FROM users WHERE username = ?", (username,)).rowcount:
                raise AccountError(f"no user {username!r}")
            _end_sessions(con, username)

    def set_role(self, username: str, role: str) -> None:
        """Change an account's role, and end its sessions."""
        _check_role(role)
        with self._db() as con:
            if not con.execute("UPDATE users SET role = ? WHERE username = ?", (role, username)).rowcount:
                raise AccountError(f"no user {username!r}")
            _end_sessions(con, username)

    def set_password(self, username: str, password: str) -> None:
        """Change an account's password, and end its sessions (a thief's copy of a cookie among them)."""
        _check_password(password)
        with self._db() as con:
            sql = "UPDATE users SET password_hash = ? WHERE username = ?"
            if not con.execute(sql, (generate_password_hash(password), username)).rowcount:
                raise AccountError(f"no user {username!r}")
            _end_sessions(con, username)

    def list(self) -> builtins.list[User]:
        """Every account, by name."""
        with self._db() as con:
            return [User(u, r) for u, r in con.execute("SELECT username, role FROM users ORDER BY username")]

    def get(self, username: str) -> User | None:
        """The account called ``username``, or ``None``."""
        with self._db() as con:
            row = con.execute("SELECT username, role FROM users WHERE username = ?", (username,)).fetchone()
        return User(*row) if row else None

    # -- signing in ----------------------------------------------------------

    def throttled(self, username: str, address: str, now: dt.datetime | None = None) -> bool:
        """True when sign-ins as ``username`` from ``address``, or any from ``address``, failed too often lately."""
        with self._db() as con:
            return _too_many(con, username, address, now or _now())

    def authenticate(self, username: str, password: str, address: str,
                     now: dt.datetime | None = None) -> User | None:
        """The user when the password is right; ``None`` when not; :class:`Throttled` when too many failed.

        The attempt is counted as a failure *before* the password is checked,
        in one write transaction with the check of the count, so parallel
        requests (threads or processes) cannot all slip under the limit; a
        right password then clears the failures of this account from this
        address.  An unknown name costs one check against a dummy hash of the
        same method, so that its answer takes as long as a wrong password's.
        """
        now = now or _now()
        with self._db(immediate=True) as con:
            if _too_many(con, username, address, now):
                raise Throttled("too many failed sign-ins")
            con.execute("INSERT INTO sign_in_failures VALUES (?, ?, ?)", (now.isoformat(), username, address))
            con.execute("DELETE FROM sign_in_failures WHERE at < ?", ((now - 2 * WINDOW).isoformat(),))
            row = con.execute("SELECT password_hash, role FROM users WHERE username = ?", (username,)).fetchone()
        if not check_password_hash(row[0] if row else _dummy_hash(), password) or row is None:
            return None
        with self._db() as con:
            con.execute("DELETE FROM sign_in_failures WHERE username = ? AND address = ?", (username, address))
        return User(username, row[1])

    # -- sessions ------------------------------------------------------------

    def start_session(self, username: str, lifetime: dt.timedelta, now: dt.datetime | None = None) -> str:
        """A new session of ``username`` for ``lifetime``: the random token its cookie carries."""
        now = now or _now()
        token = secrets.token_urlsafe(32)
        with self._db() as con:
            con.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)",
                        (_token_hash(token), username, now.isoformat(), (now + lifetime).isoformat()))
            con.execute("DELETE FROM sessions WHERE expires_at <= ?", (now.isoformat(),))
        return token

    def session_user(self, token: str, now: dt.datetime | None = None) -> User | None:
        """The account of the live session ``token``, or ``None`` (ended, expired, account gone)."""
        with self._db() as con:
            row = con.execute("SELECT u.username, u.role FROM sessions s JOIN users u ON u.username = s.username "
                              "WHERE s.token_hash = ? AND s.expires_at > ?",
                              (_token_hash(token), (now or _now()).isoformat())).fetchone()
        return User(*row) if row else None

    def end_session(self, token: str) -> None:
        """End one session (signing out): every copy of its cookie stops working."""
        with self._db() as con:
            con.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))

    def sign_out_everywhere(self, username: str) -> int:
        """End every session of an account at once; how many there were."""
        with self._db() as con:
            if not con.execute("SELECT 1 FROM users WHERE username = ?", (username,)).fetchone():
                raise AccountError(f"no user {username!r}")
            return _end_sessions(con, username)

    def session_counts(self, now: dt.datetime | None = None) -> dict[str, int]:
        """How many live sessions each account has (accounts without any are left out)."""
        with self._db() as con:
            rows = con.execute("SELECT username, count(*) FROM sessions WHERE expires_at > ? GROUP BY username",
                               ((now or _now()).isoformat(),))
            return dict(rows.fetchall())

    # -- audit log -----------------------------------------------------------

    def audit(self, username: str | None, action: str, layer: str | None = None,
              rows: int | None = None, detail: str | None = None) -> None:
        """Record who did what, to which layer, and how many rows."""
        with self._db() as con:
            con.execute("INSERT INTO audit_log (at, username, action, layer, rows, detail) VALUES (?, ?, ?, ?, ?, ?)",
                        (_now().isoformat(), username, action, layer, rows, detail))

    def audit_log(self, limit: int = 500) -> builtins.list[AuditEntry]:
        """The latest entries of the audit log, newest first."""
        with self._db() as con:
            rows = con.execute("SELECT at, username, action, layer, rows, detail FROM audit_log "
                               "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [AuditEntry(*r) for r in rows]


def _too_many(con: sqlite3.Connection, username: str, address: str, now: dt.datetime) -> bool:
    """Whether the failures within the window reach a limit: of ``username`` from ``address``, or of ``address``."""
    pair, everyone = con.execute(
        "SELECT count(*) FILTER (WHERE username = ?), count(*) FROM sign_in_failures WHERE address = ? AND at > ?",
        (username, address, (now - WINDOW).isoformat()),
    ).fetchone()
    return pair >= MAX_FAILURES or everyone >= MAX_ADDRESS_FAILURES


def _end_sessions(con: sqlite3.Connection, username: str) -> int:
    """Delete every session of ``username``; how many there were."""
    return con.execute("DELETE FROM sessions WHERE username = ?", (username,)).rowcount


def _token_hash(token: str) -> str:
    """What the sessions table keeps of a token: a copy of the file does not hand out live sessions."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@functools.cache
def _dummy_hash() -> str:
    """A hash made like the real ones (same method and cost) of a password nobody knows, once per process."""
    return generate_password_hash(secrets.token_hex(16))


def _check_username(username: str) -> str:
    username = (username or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9._-]{2,64}", username):
        raise AccountError("user names are 2–64 letters, digits, '.', '_' or '-'")
    return username


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")


def _check_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise AccountError(f"passwords need at least {MIN_PASSWORD} characters")
