"""Sign-in glue for Flask: the current user, role checks, CSRF, cookies, headers."""

from __future__ import annotations

from functools import wraps

from flask import abort, current_app, g, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from gisapp import privacy
from gisapp.accounts import Accounts, User

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "SAMEORIGIN",
}


class _Sessions(SecureCookieSessionInterface):
    """Signed cookie sessions that are ``Secure`` whenever the request came over HTTPS.

    Behind a TLS-terminating proxy the request is HTTPS when the proxy says so
    (``X-Forwarded-Proto``, believed only with ``GISAPP_PROXIES`` > 0);
    ``GISAPP_SECURE_COOKIES=always`` makes every session cookie ``Secure``.
    """

    def get_cookie_secure(self, app) -> bool:
        """``Secure`` when forced by the settings or when this request came over HTTPS."""
        forced = app.config.get("SESSION_COOKIE_SECURE") or app.config.get("SECURE_COOKIES") == "always"
        return bool(forced) or request.is_secure


def get_accounts() -> Accounts:
    """The accounts file of this app."""
    if "accounts" not in g:
        g.accounts = Accounts(current_app.config["ACCOUNTS"])
    return g.accounts


def current_user() -> User | None:
    """The signed-in user: the live session its cookie names, checked on every request, or ``None``."""
    if "user" not in g:
        token = session.get("sid")
        g.user = get_accounts().session_user(token) if isinstance(token, str) else None
    return g.user


def signed_in_user() -> User:
    """The signed-in user of a view behind :func:`require` (401 if none: nothing is done without its author)."""
    user = current_user()
    if user is None:
        abort(401)
    return user


def sign_in(user: User) -> None:
    """Start a fresh session for ``user``: a new row in the accounts file, its token in the cookie."""
    session.clear()
    session["sid"] = get_accounts().start_session(user.username, current_app.permanent_session_lifetime)
    session.permanent = True


def sign_out() -> User | None:
    """End this session (every copy of its cookie with it); who was signed in."""
    user, token = current_user(), session.get("sid")
    if isinstance(token, str):
        get_accounts().end_session(token)
    session.clear()
    return user


def require(role: str):
    """View decorator: sign-in required (redirect), and at least ``role`` (403)."""

    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            user = current_user()
            if user is None:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if not user.can(role):
                abort(403, f"this page needs the {role} role")
            return view(*args, **kwargs)

        return wrapped

    return decorate


def init_app(app) -> None:
    """Cookie settings, CSRF protection on every form, security headers."""
    app.session_interface = _Sessions()
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      PERMANENT_SESSION_LIFETIME=8 * 3600)
    app.config["MAX_CONTENT_LENGTH"] = app.config["MAX_UPLOAD_MB"] * 1024 * 1024
    CSRFProtect(app)

    @app.context_processor
    def _user():
        return {"current_user": current_user()}

    @app.after_request
    def _headers(response):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response


def show_personal() -> bool:
    """Whether this request may see personal fields (:func:`gisapp.privacy.show_personal` for its user)."""
    return privacy.show_personal(current_user(), forced=current_app.config.get("SHOW_PERSONAL_DATA"))
