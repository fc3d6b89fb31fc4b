"""The council's web console under ``/console``: server-rendered pages, no JavaScript.

Security, once, for every page (see docs/console.md):

* a signed session cookie (``clue_console``: HttpOnly, SameSite=Strict, Secure unless
  ``CLUE_CONSOLE_INSECURE_COOKIES=1``) holding the staff username, a CSRF token and the
  times of login and last activity; idle (30 min) and absolute (12 h) timeouts;
* the staff user is reloaded from the database on every request (a removed user is
  signed out at once, a role change applies at once);
* every POST needs the session's CSRF token (400 without it) and, except sign-out, the
  ``admin`` role (403 for ``auditor``);
* every response carries a strict Content-Security-Policy and friends.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
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
from werkzeug.exceptions import HTTPException

import keys
from clue_server import db
from clue_server.audit import chain
from clue_server.audit import services as audit
from clue_server.config import CATEGORIES, ID_TYPES
from clue_server.console import auth, charts, queries
from clue_server.disputes import services as disputes
from clue_server.errors import ClueError
from clue_server.members import services as members
from clue_server.members.models import Member
from clue_server.quotas import services as quotas
from clue_server.quotas import settings as council
from clue_server.stats import services as stats

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
MAX_PEM_BYTES = 8 * 1024
LOGIN_FAILED = ("Sign-in failed. Check the username and password. After 5 failed attempts "
                "an account is locked for 15 minutes.")
OPEN_ENDPOINTS = {"console.login", "console.static"}


def init_app(app: Flask) -> None:
    """Register the console; the session secret comes from the server keys directory."""
    from clue_server.keystore import console_session_secret

    settings = app.extensions["clue_settings"]
    if "clue_keys" in app.extensions:
        app.secret_key = console_session_secret(settings.server_keys_dir)
    else:  # a CLI app (load_keys=False) serves no console pages; any secret will do
        app.secret_key = secrets.token_bytes(32)
    app.config.update(
        SESSION_COOKIE_NAME="clue_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=os.environ.get("CLUE_CONSOLE_INSECURE_COOKIES") != "1",
    )
    app.config.setdefault("CONSOLE_IDLE_SECONDS",
                          int(os.environ.get("CLUE_CONSOLE_IDLE_MINUTES", "30")) * 60)
    app.config.setdefault("CONSOLE_MAX_SESSION_SECONDS", 12 * 3600)
    app.register_blueprint(bp)

    @app.after_request
    def _console_headers(response: Response) -> Response:
        # App-wide so that routing errors under /console (404, 405) get the headers too.
        if request.path == "/console" or request.path.startswith("/console/"):
            for name, value in SECURITY_HEADERS.items():
                response.headers[name] = value
        return response


# -- every request --------------------------------------------------------------------------


@bp.before_request
def _guard() -> Any:
    request.max_content_length = MAX_CONSOLE_BODY
    if request.endpoint == "console.static":
        return None
    g.staff = signed_in_staff(touch=True)
    if request.method == "POST":
        sent = request.form.get("csrf_token", "")
        expected = session.get("csrf", "")
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            abort(400, "the form's CSRF token is missing or stale; reload the page")
    if g.staff is None and request.endpoint not in OPEN_ENDPOINTS:
        return redirect(url_for("console.login"))
    if (request.method == "POST" and g.staff is not None and g.staff.role != "admin"
            and request.endpoint not in {"console.logout", "console.login"}):
        abort(403, "auditors have read-only access")
    return None


def signed_in_staff(*, touch: bool = False) -> Any:
    """The signed-in, still-existing staff user of this request's session, or ``None``.

    Applies the idle and absolute timeouts. Other parts of the app (``/metrics``) may call
    it; the console itself calls it with ``touch=True`` to record the activity.
    """
    username = session.get("staff_user")
    if not username:
        return None
    now = int(time.time())
    idle = now - int(session.get("seen", 0))
    age = now - int(session.get("login_at", 0))
    if (idle > current_app.config["CONSOLE_IDLE_SECONDS"]
            or age > current_app.config["CONSOLE_MAX_SESSION_SECONDS"]):
        if touch:
            _end_session()
            flash("Your session expired. Sign in again.")
        return None
    user = auth.find_staff(db.get_session(), str(username))
    if user is None:
        if touch:
            _end_session()
        return None
    if touch:
        session["seen"] = now
    return user


def _end_session() -> None:
    session.clear()
    session["csrf"] = secrets.token_urlsafe(32)


@bp.context_processor
def _template_globals() -> dict[str, Any]:
    def csrf_token() -> str:
        if "csrf" not in session:
            session["csrf"] = secrets.token_urlsafe(32)
        token: str = session["csrf"]
        return token

    return {"csrf_token": csrf_token, "staff": g.get("staff"),
            "is_admin": g.get("staff") is not None and g.staff.role == "admin"}


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> tuple[str, int]:
    return render_template("console/error.html", error=error), error.code or 500


def _actor() -> str:
    return auth.actor(g.staff.username)


def _commit() -> None:
    db.get_session().commit()


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
    user = auth.authenticate(dbs, username, password, now=db.utcnow())
    _commit()  # failure counters and lockouts count too
    if user is None:
        return render_template("console/login.html", error=LOGIN_FAILED, username=username), 401
    session.clear()  # a fresh session (and CSRF token) at every sign-in
    now = int(time.time())
    session.update(staff_user=user.username, login_at=now, seen=now,
                   csrf=secrets.token_urlsafe(32))
    return redirect(url_for("console.overview"))


@bp.post("/logout")
def logout() -> Any:
    _end_session()
    flash("Signed out.")
    return redirect(url_for("console.login"))


# -- overview -------------------------------------------------------------------------------


@bp.get("/")
def overview() -> Any:
    dbs = db.get_session()
    now = db.utcnow()
    series = stats.daily_series(dbs, days=90, today=now.date())
    registrations = [(p.day, p.registrations) for p in series]
    lookups = [(p.day, p.lookups) for p in series]
    hit_rate = [(p.day, 100.0 * p.hits / p.lookups if p.lookups else None) for p in series]
    reports = {(r.id_type, r.category): r.reports
               for r in stats.active_reports_by_type_and_category(dbs, now)}
    return render_template(
        "console/overview.html",
        charts=[("Registrations per day", charts.bar_chart(registrations,
                                                           label="Registrations per day")),
                ("Lookups per day", charts.bar_chart(lookups, label="Lookups per day")),
                ("Hit rate per day", charts.line_chart(hit_rate, label="Hit rate per day",
                                                       percent=True))],
        totals={"registrations": sum(p.registrations for p in series),
                "lookups": sum(p.lookups for p in series), "hits": sum(p.hits for p in series)},
        reports=reports, id_types=ID_TYPES, categories=CATEGORIES,
        by_status=stats.members_by_status(dbs),
        anomalies=stats.volume_anomalies(dbs, now.date()))


# -- members --------------------------------------------------------------------------------


@bp.get("/members")
def members_page() -> Any:
    return _render_members()


def _render_members(error: str | None = None, status: int = 200,
                    form: dict[str, str] | None = None) -> Any:
    dbs = db.get_session()
    activity = {a.member_id: a for a in stats.member_activity(dbs, today=db.utcnow().date())}
    rows = [{"member": m, "activity": activity.get(m.id),
             "quota": quotas.effective_quota(dbs, m.id)} for m in members.list_members(dbs)]
    return render_template("console/members.html", rows=rows, error=error,
                           form=form or {}), status


@bp.post("/members")
def admit() -> Any:
    name = request.form.get("name", "").strip()
    form = {"name": name}
    try:
        signing = _pem_field("public_key", Ed25519PublicKey, "an Ed25519 signing public key",
                             required=True)
        hpke = _pem_field("hpke_key", X25519PublicKey, "an X25519 (HPKE) public key",
                          required=False)
        dbs = db.get_session()
        member = members.add_member(dbs, name, signing, hpke_public_key=hpke, actor=_actor())
    except (members.MemberError, _FormError) as exc:
        db.get_session().rollback()
        return _render_members(error=str(exc), status=400, form=form)
    member_id, member_name = member.id, member.name
    _commit()
    flash(f"Admitted {member_name} as {member_id}.")
    return redirect(url_for("console.members_page"))


class _FormError(ValueError):
    pass


def _pem_field(field: str, kind: type, what: str, *, required: bool) -> Any:
    """A public key PEM from the file input ``<field>_file`` or the textarea ``<field>``."""
    upload = request.files.get(f"{field}_file")
    data = b""
    if upload is not None and upload.filename:
        data = upload.stream.read(MAX_PEM_BYTES + 1)
    if not data:
        data = request.form.get(field, "").encode("utf-8", "replace")
    if not data.strip():
        if required:
            raise _FormError(f"{what} is required (a PEM file or pasted PEM text)")
        return None
    if len(data) > MAX_PEM_BYTES:
        raise _FormError(f"{what}: the PEM is larger than {MAX_PEM_BYTES} bytes")
    try:
        key = keys.load_public_key_pem(data, source=field)
    except keys.KeyFileError:
        raise _FormError(f"{what}: not a PEM public key") from None
    if not isinstance(key, kind):
        raise _FormError(f"{what}: the PEM holds another kind of key")
    return key


@bp.post("/members/<member_id>/status")
def member_status(member_id: str) -> Any:
    wanted = {"suspend": "suspended", "resume": "active"}.get(request.form.get("action", ""))
    if wanted is None:
        abort(400, "action must be suspend or resume")
    member = _member_or_404(member_id)
    try:
        members.set_status(db.get_session(), member.id, wanted, actor=_actor())
    except members.MemberError as exc:
        flash(str(exc))
        return redirect(url_for("console.members_page"))
    _commit()
    flash(f"{member.name} is now {wanted}.")
    return redirect(url_for("console.members_page"))


@bp.post("/members/<member_id>/quota")
def member_quota(member_id: str) -> Any:
    member = _member_or_404(member_id)
    lookups = _optional_int("daily_lookups", minimum=0)
    registrations = _optional_int("daily_registrations", minimum=0)
    try:
        quotas.set_member_quota(db.get_session(), member.id, lookups, registrations, _actor())
    except quotas.QuotaError as exc:
        db.get_session().rollback()
        return _render_members(error=str(exc), status=400)
    _commit()
    flash(f"Quota of {member.name} saved.")
    return redirect(url_for("console.members_page"))


def _member_or_404(member_id: str) -> Member:
    member = db.get_session().get(Member, member_id[:32])
    if member is None:
        abort(404, "no such member")
    return member


def _optional_int(field: str, *, minimum: int = 1, maximum: int = 10**9) -> int | None:
    raw = request.form.get(field, "").strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or not minimum <= int(raw) <= maximum:
        abort(400, f"{field} must be a whole number from {minimum} to {maximum}, or empty")
    return int(raw)


# -- disputes -------------------------------------------------------------------------------


@bp.get("/disputes")
def disputes_page() -> Any:
    now = db.utcnow()
    rows = disputes.list_disputes(db.get_session(), now, include_closed=True)
    return render_template("console/disputes.html", rows=rows, now=now,
                           deadline_days=council.dispute_deadline_days(db.get_session()),
                           overdue=sum(1 for r in rows if r["overdue"]))


@bp.post("/disputes/suspend-overdue")
def suspend_overdue() -> Any:
    dispute_id = request.form.get("dispute_id") or None
    try:
        count = disputes.suspend_overdue(db.get_session(), db.utcnow(), _actor(),
                                         dispute_id=dispute_id)
    except ClueError as exc:
        db.get_session().rollback()
        flash(exc.detail)
        return redirect(url_for("console.disputes_page"))
    _commit()
    flash(f"Suspended {count} report(s) of reporters who missed the deadline.")
    return redirect(url_for("console.disputes_page"))


# -- audit ----------------------------------------------------------------------------------


@bp.get("/audit")
def audit_page() -> Any:
    dbs = db.get_session()
    before = request.args.get("before", "")
    entries = queries.recent_audit(dbs, before=int(before) if before.isdigit() else None)
    return render_template("console/audit.html", entries=entries, chain=_chain_status(dbs))


def _chain_status(dbs: Any) -> chain.ChainStatus:
    settings = current_app.extensions["clue_settings"]
    return chain.verify_chain(dbs, chain.server_public_keys(settings.server_keys_dir))


# -- retention ------------------------------------------------------------------------------


@bp.get("/retention")
def retention_page() -> Any:
    return _render_retention()


def _render_retention(error: str | None = None, status: int = 200) -> Any:
    dbs = db.get_session()
    limits = council.retention_days(dbs, current_app.extensions["clue_settings"])
    soon = queries.expiring(dbs, db.utcnow(), days=30)
    return render_template("console/retention.html", limits=limits, soon=soon,
                           id_types=ID_TYPES, error=error), status


@bp.post("/retention")
def retention_set() -> Any:
    id_type = request.form.get("id_type", "")
    if id_type not in ID_TYPES:
        abort(400, "unknown identifier type")
    days = _optional_int("days", maximum=3650)
    if days is None:
        abort(400, "days is required")
    dbs = db.get_session()
    before = council.retention_days(dbs, current_app.extensions["clue_settings"])[id_type]
    try:
        council.set_int(dbs, f"retention_days.{id_type}", days, maximum=3650)
    except council.SettingError as exc:
        dbs.rollback()
        return _render_retention(error=str(exc), status=400)
    audit.record(dbs, actor=_actor(), action="retention.set", subject=id_type,
                 days=days, previous=before)
    _commit()
    flash(f"Reports of type {id_type} now live at most {days} days.")
    return redirect(url_for("console.retention_page"))
