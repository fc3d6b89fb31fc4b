"""The council's web console under ``/console``: server-rendered pages, no JavaScript.

Security, once, for every page (see docs/console.md):

* a signed cookie (``clue_console``: HttpOnly, SameSite=Strict, Secure unless
  ``CLUE_CONSOLE_INSECURE_COOKIES=1``) holding a CSRF token and a session token; the
  session itself lives on the server (``console_sessions``), so signing out and removing
  a staff user end it there; idle (30 min) and absolute (12 h) timeouts;
* the staff user is reloaded from the database on every request (a role change applies
  at once);
* every POST needs the session's CSRF token (400 without it) and, except sign-out, the
  ``admin`` role (403 for ``auditor``);
* sign-in is throttled per client address and per account (``auth``), and refused
  attempts cost no password hash;
* redirects are relative: nothing is built from the request's ``Host``;
* every response carries a strict Content-Security-Policy and friends.

The pages themselves are in ``pages.py``; this module has the blueprint, the checks,
sign-in and sign-out, and the HTML answers for ``/`` and unknown console paths.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface, SessionMixin
from flask_babel import gettext as _
from flask_babel import ngettext
from werkzeug.exceptions import HTTPException

from clue_server import db
from clue_server.console import auth, i18n, sessions

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static")

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}
MAX_CONSOLE_BODY = 256 * 1024
OPEN_ENDPOINTS = {"console.login", "console.static", "console.unknown"}
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def login_failed() -> str:
    return str(_("Sign-in failed. Check the username and password."))


def init_app(app: Flask) -> None:
    """Register the console; the session secret comes from the server keys directory."""
    from clue_server.console import pages  # noqa: F401 - registers the page routes on bp
    from clue_server.keystore import console_session_secret

    settings = app.extensions["clue_settings"]
    if "clue_keys" in app.extensions:
        app.secret_key = console_session_secret(settings.server_keys_dir)
    else:  # a CLI app (load_keys=False) serves no console pages; any secret will do
        app.secret_key = secrets.token_bytes(32)
    secure = os.environ.get("CLUE_CONSOLE_INSECURE_COOKIES") != "1"
    app.session_interface = _ConsoleSessions()
    app.config.update(
        SESSION_COOKIE_NAME="clue_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=secure,
    )
    app.config.setdefault("CONSOLE_IDLE_SECONDS",
                          int(os.environ.get("CLUE_CONSOLE_IDLE_MINUTES", "30")) * 60)
    app.config.setdefault("CONSOLE_MAX_SESSION_SECONDS", 12 * 3600)
    app.config.setdefault("CONSOLE_PROXY_HOPS",
                          _hops(os.environ.get("CLUE_CONSOLE_PROXY_HOPS", "0")))
    i18n.init_app(app, secure_cookie=secure)
    app.register_blueprint(bp)
    app.add_url_rule("/", "console_root", _root)
    # Without this rule werkzeug answers /console with a 308 built from the Host header.
    app.add_url_rule("/console", "console_bare", lambda: redirect(url_for("console.overview")))
    app.context_processor(_template_globals)

    @app.after_request
    def _console_headers(response: Response) -> Response:
        # App-wide so that routing errors under /console (404, 405) get the headers too.
        if request.path in ("/", "/console") or request.path.startswith("/console/"):
            for name, value in SECURITY_HEADERS.items():
                response.headers[name] = value
        return _relative_redirect(response)


class _ConsoleSessions(SecureCookieSessionInterface):
    """The console's cookie session, opened only for console pages: an API request (which
    never carries it) does not pay for reading and verifying a cookie it has not got."""

    def open_session(self, app: Flask, request: Any) -> SessionMixin | None:
        if request.path.startswith("/v1/"):
            return self.null_session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, self.null_session_class):
            super().save_session(app, session, response)


def _hops(value: str) -> int:
    if not value.isdigit() or int(value) > 10:
        raise SystemExit(f"CLUE_CONSOLE_PROXY_HOPS must be 0 to 10, not {value!r}")
    return int(value)


def _relative_redirect(response: Response) -> Response:
    """Never send a browser to the host the request named (werkzeug's slash redirects do).

    An absolute ``Location`` on this request's own scheme and host becomes a path; any
    other is left alone (the console builds none).
    """
    if not 300 <= response.status_code < 400:  # most answers: no header lookup
        return response
    location = response.headers.get("Location")
    if location:
        parts = urlsplit(location)
        if parts.scheme or parts.netloc:
            response.headers["Location"] = (parts.path or "/") + (
                f"?{parts.query}" if parts.query else "")
    return response


def client_address() -> str:
    """The client's address for throttling: the socket's peer, or, behind
    ``CLUE_CONSOLE_PROXY_HOPS`` trusted proxies, the address they saw. IPv6 counts by /64
    (one host usually owns a whole /64)."""
    address = request.remote_addr or ""
    hops = current_app.config["CONSOLE_PROXY_HOPS"]
    if hops:
        forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",")
                     if a.strip()]
        address = forwarded[-hops] if len(forwarded) >= hops else address
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


# -- every request --------------------------------------------------------------------------


@bp.before_request
def _guard() -> Any:
    request.max_content_length = MAX_CONSOLE_BODY
    if request.endpoint == "console.static":
        return None
    g.staff = _signed_in_staff()
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        expected = session.get("csrf", "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            abort(400, _("The form's security token (CSRF) is missing or stale. Reload the page "
                         "and try again."))
    if g.staff is None and request.endpoint not in OPEN_ENDPOINTS:
        return redirect(url_for("console.login"))
    if (request.method == "POST" and g.staff is not None and g.staff.role != "admin"
            and request.endpoint not in {"console.logout", "console.login"}):
        abort(403, _("Auditors have read-only access."))
    return None


def _signed_in_staff() -> Any:
    """The staff user of this request's server-side session, touching its last-seen time."""
    token = session.get("sid")
    if not isinstance(token, str):
        return None
    dbs = db.get_session()
    user, expired = sessions.resolve(dbs, token, now=db.utcnow(), touch=True)
    if dbs.dirty or dbs.deleted or expired:
        dbs.commit()
    if user is None:
        session.pop("sid", None)
        if expired:
            flash(_("Your session expired. Sign in again."))
    return user


def _template_globals() -> dict[str, Any]:
    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        token: str = session["csrf"]
        return token

    staff = g.get("staff")
    return {"csrf_token": csrf_token, "staff": staff,
            "is_admin": staff is not None and staff.role == "admin"}


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Any:
    code = error.code or 500
    descriptions = {
        403: _("You may not do this."),
        404: _("There is no console page at this address."),
        405: _("This page does not take that kind of request."),
        413: _("The form is larger than the console accepts (256 KiB)."),
    }
    description = error.description
    if code in descriptions and (description is None
                                 or description == type(error).description):
        description = descriptions[code]
    response = current_app.make_response(
        (render_template("console/error.html", code=code, description=description), code))
    for name, value in error.get_headers():
        if name.lower() in ("allow", "retry-after"):
            response.headers[name] = value
    return response


@bp.route("/<path:unknown>", methods=ALL_METHODS)
def unknown(unknown: str) -> Any:
    abort(404)


def _root() -> Any:
    return render_template("console/root.html")


def commit() -> None:
    db.get_session().commit()


def actor() -> str:
    return auth.actor(g.staff.username)


# -- sign-in --------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    if request.method == "GET":
        if g.staff is not None:
            return redirect(url_for("console.overview"))
        return render_template("console/login.html", error=None)
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    dbs = db.get_session()
    now = db.utcnow()
    address = client_address()
    result = auth.authenticate(dbs, username, password, address=address, now=now)
    if isinstance(result, auth.Refused):
        commit()  # the failure counts
        shown = username[:64].replace("\x00", "")
        if result.throttled:
            minutes = (result.retry_after + 59) // 60
            error = ngettext(
                "Too many failed sign-ins. Try again in %(num)d minute, or ask an "
                "administrator to run clue-server staff unlock.",
                "Too many failed sign-ins. Try again in %(num)d minutes, or ask an "
                "administrator to run clue-server staff unlock.", minutes)
            page = render_template("console/login.html", error=error, username=shown)
            return page, 429, {"Retry-After": str(result.retry_after)}
        return render_template("console/login.html", error=login_failed(), username=shown), 401
    token = sessions.start(dbs, result, address=address, now=now)
    commit()
    session.clear()  # a fresh session (and CSRF token) at every sign-in
    session.update(sid=token, csrf=secrets.token_urlsafe(32))
    return redirect(url_for("console.overview"))


@bp.post("/logout")
def logout() -> Any:
    token = session.get("sid")
    if isinstance(token, str):
        sessions.end(db.get_session(), token)
        commit()
    session.clear()
    session["csrf"] = secrets.token_urlsafe(32)
    flash(_("Signed out."))
    return redirect(url_for("console.login"))
