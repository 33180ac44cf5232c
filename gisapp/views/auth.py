"""Sign-in and sign-out, the accounts list and the audit log (admins)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, url_for

from gisapp import auth
from gisapp.web import get_lang

bp = Blueprint("auth", __name__)

MESSAGES = {
    "vi": {"bad": "Sai tên đăng nhập hoặc mật khẩu.",
           "throttled": "Đăng nhập sai quá nhiều lần. Vui lòng thử lại sau 15 phút."},
    "en": {"bad": "Wrong user name or password.",
           "throttled": "Too many failed sign-ins. Please try again in 15 minutes."},
}


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
        address = request.remote_addr or "?"
        accounts = auth.get_accounts()
        if accounts.throttled(name, address):
            error, status = MESSAGES[get_lang()]["throttled"], 429
        else:
            user = accounts.authenticate(name, password, address)
            if user:
                auth.sign_in(user)
                return redirect(_safe_next(request.args.get("next")))
            error, status = MESSAGES[get_lang()]["bad"], 401
    return render_template("login.html", error=error, lang=get_lang()), status


@bp.post("/logout")
def logout():
    """End the session."""
    auth.sign_out()
    return redirect(url_for("auth.login"))


@bp.get("/admin")
@auth.require("admin")
def admin():
    """Accounts and the audit log."""
    accounts = auth.get_accounts()
    return render_template("admin.html", users=accounts.list(), log=accounts.audit_log(), lang=get_lang())
