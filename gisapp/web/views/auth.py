"""Sign-in and sign-out, the accounts list, signing an account out everywhere and the audit log (admins)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from gisapp import i18n
from gisapp.accounts import AccountError, Throttled
from gisapp.store import StoreError
from gisapp.tiles.disk import tiles_health
from gisapp.web import auth
from gisapp.web.request import get_lang, get_store

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site paths may be redirected to after sign-in."""
    if not target or urlsplit(target).netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form; on success go back where the user was."""
    error, status = None, 200
    if request.method == "POST":
        name, password = request.form.get("username", ""), request.form.get("password", "")
        try:  # the client's address: ProxyFix puts the trusted proxy's X-Forwarded-For here (GISAPP_PROXIES)
            user = auth.get_accounts().authenticate(name, password, request.remote_addr or "?")
        except Throttled:
            error, status = i18n.text("login_throttled", get_lang()), 429
        else:
            if user:
                auth.sign_in(user)
                return redirect(_safe_next(request.args.get("next")))
            error, status = i18n.text("login_bad", get_lang()), 401
    return render_template("login.html", error=error, lang=get_lang()), status


@bp.post("/logout")
def logout():
    """End the session."""
    user = auth.sign_out()
    if user:
        auth.get_accounts().audit(user.username, "signed out")
    return redirect(url_for("auth.login"))


@bp.get("/admin")
@auth.require("admin")
def admin():
    """Accounts, their sessions and the audit log."""
    accounts = auth.get_accounts()
    return render_template("admin.html", users=accounts.list(), sessions=accounts.session_counts(),
                           log=accounts.audit_log(), tiles=_tiles(),
                           lang=get_lang())


def _tiles() -> dict | None:
    """The tile renderer's state for the admin page (``None`` without a tile folder or a store)."""
    try:
        return tiles_health(current_app.config, get_store())
    except StoreError:
        return None


@bp.post("/admin/sign-out")
@auth.require("admin")
def sign_out_everywhere():
    """End every session of one account (a lost laptop, a cookie copied off a shared computer)."""
    admin = auth.signed_in_user()
    name = request.form.get("username", "")
    accounts = auth.get_accounts()
    try:
        accounts.sign_out_everywhere(name)
    except AccountError as err:
        abort(400, str(err))
    accounts.audit(admin.username, "signed out everywhere", detail=name)
    return redirect(url_for("auth.admin"))
