"""The console's pages: overview, members, disputes, audit log and council settings.

Views stay thin: they validate the form, call the same services as the CLI and the API,
commit, and redirect (POST/redirect/GET). Destructive actions (suspending a member,
suspending overdue reports) answer a confirmation page first; the change happens only
when that page's form comes back with ``confirm=yes`` (no JavaScript needed).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

import keys
from clue_server import db
from clue_server.audit import chain, verifications
from clue_server.audit.models import AuditEvent
from clue_server.config import CATEGORIES, ID_TYPES
from clue_server.console import charts, i18n, queries
from clue_server.console.views import actor, bp, commit
from clue_server.disputes import services as disputes
from clue_server.errors import ClueError
from clue_server.members import services as members
from clue_server.members.models import Member
from clue_server.quotas import services as quotas
from clue_server.quotas import settings as council
from clue_server.stats import services as stats

MAX_PEM_BYTES = 8 * 1024
MAX_ENTRY_ID = 2**63 - 1
MEMBER_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
FILTER_TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,64}")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class FormError(ValueError):
    """A form field was wrong; the message (translated) says which and why."""


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
    titles = (_("Registrations per day (UTC days)"), _("Lookups per day (UTC days)"),
              _("Hit rate per day (UTC days)"))
    return render_template(
        "console/overview.html",
        charts=[(titles[0], charts.bar_chart(registrations, label=titles[0], exact=i18n.num)),
                (titles[1], charts.bar_chart(lookups, label=titles[1], exact=i18n.num)),
                (titles[2], charts.line_chart(hit_rate, label=titles[2], percent=True))],
        totals={"registrations": sum(p.registrations for p in series),
                "lookups": sum(p.lookups for p in series), "hits": sum(p.hits for p in series)},
        reports=reports, id_types=ID_TYPES, categories=CATEGORIES,
        by_status=stats.members_by_status(dbs), health=queries.health(dbs, now), now=now)


# -- members --------------------------------------------------------------------------------


@bp.get("/members")
def members_page() -> Any:
    return _render_members()


def _render_members(error: str | None = None, status: int = 200,
                    form: dict[str, str] | None = None) -> Any:
    dbs = db.get_session()
    today = db.utcnow().date()
    activity = {a.member_id: a for a in stats.member_activity(dbs, today=today)}
    use = queries.quota_use_today(dbs, today)
    rows = [{"member": m, "activity": activity.get(m.id), "use": use.get(m.id),
             "quota": quotas.effective_quota(dbs, m.id)} for m in members.list_members(dbs)]
    return render_template("console/members.html", rows=rows, error=error,
                           form=form or {}), status


@bp.post("/members")
def admit() -> Any:
    name = request.form.get("name", "").strip()
    form = {"name": name[:200]}
    try:
        signing = _pem_field("public_key", Ed25519PublicKey, _("The request-signing key"),
                             required=True)
        hpke = _pem_field("hpke_key", X25519PublicKey, _("The HPKE key"), required=False)
        dbs = db.get_session()
        member = members.add_member(dbs, name, signing, hpke_public_key=hpke, actor=actor())
    except (members.MemberError, FormError) as exc:
        db.get_session().rollback()
        return _render_members(error=str(exc), status=400, form=form)
    member_id, member_name, has_hpke = member.id, member.name, member.hpke_public_key is not None
    commit()
    flash(_("Admitted %(name)s as %(id)s.", name=member_name, id=member_id))
    if not has_hpke:
        flash(_("%(name)s has no HPKE key yet, so no member can send it the network key. "
                "It publishes one with `clue keys publish`; then a custodian runs "
                "`clue keys network share` and it runs `clue keys network fetch`.",
                name=member_name), "warning")
    return redirect(url_for("console.members_page"))


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
            raise FormError(_("%(what)s is required (a PEM file or pasted PEM text).",
                              what=what))
        return None
    if len(data) > MAX_PEM_BYTES:
        raise FormError(_("%(what)s: the PEM is larger than %(max)s bytes.", what=what,
                          max=i18n.num(MAX_PEM_BYTES)))
    try:
        key = keys.load_public_key_pem(data, source=field)
    except keys.KeyFileError:
        raise FormError(_("%(what)s: not a PEM public key.", what=what)) from None
    if not isinstance(key, kind):
        raise FormError(_("%(what)s: the PEM holds another kind of key.", what=what))
    return key


@bp.post("/members/<member_id>/status")
def member_status(member_id: str) -> Any:
    wanted = {"suspend": "suspended", "resume": "active"}.get(request.form.get("action", ""))
    if wanted is None:
        abort(400, _("The action must be suspend or resume."))
    member = _member_or_404(member_id)
    if wanted == "suspended" and request.form.get("confirm") != "yes":
        return render_template(
            "console/confirm.html", title=_("Suspend %(name)s?", name=member.name),
            message=_("Every request %(name)s (%(id)s) signs will be refused (403) until an "
                      "administrator resumes it. This is written to the audit log.",
                      name=member.name, id=member.id),
            action_url=url_for("console.member_status", member_id=member.id),
            fields={"action": "suspend"}, confirm_label=_("Suspend %(name)s", name=member.name),
            cancel_url=url_for("console.members_page"))
    try:
        members.set_status(db.get_session(), member.id, wanted, actor=actor())
    except members.MemberError as exc:
        flash(str(exc), "warning")
        return redirect(url_for("console.members_page"))
    commit()
    flash(_("%(name)s is now suspended.", name=member.name) if wanted == "suspended"
          else _("%(name)s is active again.", name=member.name))
    return redirect(url_for("console.members_page"))


@bp.post("/members/<member_id>/quota")
def member_quota(member_id: str) -> Any:
    member = _member_or_404(member_id)
    try:
        lookups = _optional_int("daily_lookups", _("Lookups per day"), minimum=0,
                                maximum=quotas.MAX_QUOTA)
        registrations = _optional_int("daily_registrations", _("Registrations per day"),
                                      minimum=0, maximum=quotas.MAX_QUOTA)
        dbs = db.get_session()
        quotas.set_member_quota(dbs, member.id, lookups, registrations, actor())
    except (quotas.QuotaError, FormError) as exc:
        db.get_session().rollback()
        return _render_members(error=str(exc), status=400)
    used = quotas.usage_today(dbs, member.id)
    commit()
    flash(_("Quota of %(name)s saved.", name=member.name))
    for what, count, limit in ((_("lookups"), used.lookups, used.lookups_limit),
                               (_("registrations"), used.registrations,
                                used.registrations_limit)):
        if count > limit:
            flash(_("%(name)s has already made %(count)s %(what)s today, more than the new "
                    "limit of %(limit)s: further %(what)s are refused (429) until 00:00 UTC "
                    "(09:00 JST).", name=member.name, count=i18n.num(count), what=what,
                    limit=i18n.num(limit)), "warning")
    return redirect(url_for("console.members_page"))


def _member_or_404(member_id: str) -> Member:
    member = (db.get_session().get(Member, member_id) if MEMBER_ID.fullmatch(member_id)
              else None)
    if member is None:
        abort(404, _("There is no such member."))
    return member


def _optional_int(field: str, label: str, *, minimum: int = 1,
                  maximum: int = 10**9) -> int | None:
    """A whole number from the form, or None for an empty field (a FormError otherwise)."""
    raw = request.form.get(field, "").strip()
    if not raw:
        return None
    # The length check comes first: int() of 5,000 digits raises (and costs).
    if (len(raw) > len(str(maximum)) or not raw.isascii() or not raw.isdigit()
            or not minimum <= int(raw) <= maximum):
        raise FormError(_("%(label)s must be a whole number from %(min)s to %(max)s, or empty.",
                          label=label, min=i18n.num(minimum), max=i18n.num(maximum)))
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
    now = db.utcnow()
    dbs = db.get_session()
    if request.form.get("confirm") != "yes":
        due = [r for r in disputes.list_disputes(dbs, now)
               if r["overdue"] and dispute_id in (None, r["id"])]
        if not due:
            flash(_("No overdue dispute to act on."), "warning")
            return redirect(url_for("console.disputes_page"))
        silent = sum(len(e["report_ids"]) for r in due for e in r["answers"]
                     if e["answer"] is None)
        return render_template(
            "console/confirm.html",
            title=ngettext("Suspend the unanswered reports of %(num)d overdue dispute?",
                           "Suspend the unanswered reports of %(num)d overdue disputes?",
                           len(due)),
            message=ngettext("Up to %(count)s report of reporters that did not answer in "
                             "time will stop matching look-ups, and the disputes become "
                             "expired. This is written to the audit log.",
                             "Up to %(count)s reports of reporters that did not answer in "
                             "time will stop matching look-ups, and the disputes become "
                             "expired. This is written to the audit log.", silent,
                             count=i18n.num(silent)),
            items=[f"{r['id']} ({r['type']})" for r in due],
            action_url=url_for("console.suspend_overdue"),
            fields={"dispute_id": dispute_id} if dispute_id else {},
            confirm_label=_("Suspend the unanswered reports"),
            cancel_url=url_for("console.disputes_page"))
    try:
        count = disputes.suspend_overdue(dbs, now, actor(), dispute_id=dispute_id)
    except ClueError as exc:
        dbs.rollback()
        flash(exc.detail, "warning")
        return redirect(url_for("console.disputes_page"))
    commit()
    flash(ngettext("Suspended %(count)s report of reporters who missed the deadline.",
                   "Suspended %(count)s reports of reporters who missed the deadline.", count,
                   count=i18n.num(count)))
    return redirect(url_for("console.disputes_page"))


# -- audit ----------------------------------------------------------------------------------


@bp.get("/audit")
def audit_page() -> Any:
    dbs = db.get_session()
    form = {k: request.args.get(k, "") for k in ("actor", "action", "from", "to")}
    try:
        wanted = _audit_filter()
    except FormError as exc:
        page = queries.AuditPage([], None, None)
        status, error = 400, str(exc)
    else:
        page = queries.search_audit(dbs, wanted)
        status, error = 200, ""
    latest = verifications.latest(dbs)
    return render_template(
        "console/audit.html", page=page, form=form, error=error,
        filtered=any(form.values()), keep={k: v for k, v in form.items() if v},
        actions=queries.audit_actions(dbs),
        verification=latest, fold=queries.fold_details, show_items=queries.SHOW_ITEMS,
        since=verifications.entries_since(dbs, latest) if latest else 0), status


def _audit_filter() -> queries.AuditFilter:
    args = request.args
    found: dict[str, Any] = {}
    for name in ("before", "after"):
        raw = args.get(name, "")
        if raw:
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 19
                    and int(raw) <= MAX_ENTRY_ID):
                raise FormError(_("“%(name)s” must be an entry number.", name=name))
            found[name] = int(raw)
    for name, label in (("actor", _("Actor")), ("action", _("Action"))):
        raw = args.get(name, "").strip()
        if raw:
            if not FILTER_TEXT.fullmatch(raw):
                raise FormError(_("%(label)s: at most 64 characters, no control characters.",
                                  label=label))
            found[name] = raw
    for name, label, key, shift in (("from", _("From"), "since", 0),
                                    ("to", _("To"), "until", 1)):
        raw = args.get(name, "").strip()
        if raw:
            try:
                if not DAY.fullmatch(raw):
                    raise ValueError(raw)
                day = dt.date.fromisoformat(raw) + dt.timedelta(days=shift)
            except (ValueError, OverflowError):
                raise FormError(_("%(label)s must be a date written YYYY-MM-DD.",
                                  label=label)) from None
            # The dates people type are Japanese days: 00:00 JST starts each.
            found[key] = dt.datetime.combine(day, dt.time(), i18n.JST)
    since, until = found.get("since"), found.get("until")
    if since is not None and until is not None and since >= until:
        raise FormError(_("“From” must not be after “To”."))
    return queries.AuditFilter(**found)


@bp.get("/audit/<int:entry_id>")
def audit_entry(entry_id: int) -> Any:
    entry = db.get_session().get(AuditEvent, entry_id) if entry_id <= MAX_ENTRY_ID else None
    if entry is None:
        abort(404, _("There is no audit entry #%(id)s.", id=entry_id))
    return render_template("console/audit_entry.html", entry=entry,
                           fields=sorted((entry.details or {}).items()))


@bp.post("/audit/verify")
def audit_verify() -> Any:
    dbs = db.get_session()
    settings = current_app.extensions["clue_settings"]
    status, _row = verifications.verify_and_record(
        dbs, chain.server_public_keys(settings.server_keys_dir), by=actor(), now=db.utcnow())
    commit()
    if status.ok:
        flash(_("The audit chain is intact: %(entries)s entries checked.",
                entries=i18n.num(status.entries)))
    else:
        flash(_("The audit chain is BROKEN at entry #%(id)s: %(problem)s.",
                id=status.first_broken_id, problem=status.problem), "warning")
    return redirect(url_for("console.audit_page"))


# -- council settings -----------------------------------------------------------------------


@bp.get("/settings")
def settings_page() -> Any:
    return _render_settings()


@bp.get("/retention")
def retention_page() -> Any:
    return redirect(url_for("console.settings_page"))


def _render_settings(error: str | None = None, status: int = 200) -> Any:
    dbs = db.get_session()
    limits = council.retention_days(dbs, current_app.extensions["clue_settings"])
    soon = queries.expiring(dbs, db.utcnow(), days=30)
    return render_template("console/settings.html", limits=limits, soon=soon,
                           id_types=ID_TYPES, error=error,
                           deadline_days=council.dispute_deadline_days(dbs),
                           max_deadline=council.MAX_DISPUTE_DEADLINE_DAYS,
                           quota_defaults=council.quota_defaults(dbs),
                           max_quota=quotas.MAX_QUOTA), status


@bp.post("/settings/retention")
def retention_set() -> Any:
    id_type = request.form.get("id_type", "")
    if id_type not in ID_TYPES:
        abort(400, _("Unknown identifier type."))
    dbs = db.get_session()
    try:
        days = _required_int("days", _("Maximum days"), maximum=3650)
        before = council.retention_days(dbs, current_app.extensions["clue_settings"])[id_type]
        council.set_int(dbs, f"retention_days.{id_type}", days, maximum=3650)
    except (council.SettingError, FormError) as exc:
        dbs.rollback()
        return _render_settings(error=str(exc), status=400)
    from clue_server.audit import services as audit

    audit.record(dbs, actor=actor(), action="retention.set", subject=id_type,
                 days=days, previous=before)
    commit()
    flash(_("Reports of type %(type)s now live at most %(days)s days.", type=id_type,
            days=i18n.num(days)))
    return redirect(url_for("console.settings_page"))


@bp.post("/settings/dispute-deadline")
def dispute_deadline_set() -> Any:
    dbs = db.get_session()
    try:
        days = _required_int("days", _("Days to answer a dispute"),
                             maximum=council.MAX_DISPUTE_DEADLINE_DAYS)
        council.set_dispute_deadline_days(dbs, days, actor=actor())
    except (council.SettingError, FormError) as exc:
        dbs.rollback()
        return _render_settings(error=str(exc), status=400)
    commit()
    flash(_("Reporters now have %(days)s days to answer disputes filed from now on.",
            days=i18n.num(days)))
    return redirect(url_for("console.settings_page"))


@bp.post("/settings/quota-defaults")
def quota_defaults_set() -> Any:
    dbs = db.get_session()
    try:
        lookups = _optional_int("daily_lookups", _("Lookups per day"), minimum=0,
                                maximum=quotas.MAX_QUOTA)
        registrations = _optional_int("daily_registrations", _("Registrations per day"),
                                      minimum=0, maximum=quotas.MAX_QUOTA)
        if lookups is None and registrations is None:
            raise FormError(_("Give lookups per day, registrations per day, or both."))
        quotas.set_defaults(dbs, lookups, registrations, actor())
    except (quotas.QuotaError, FormError) as exc:
        dbs.rollback()
        return _render_settings(error=str(exc), status=400)
    commit()
    flash(_("Council default quotas saved."))
    return redirect(url_for("console.settings_page"))


def _required_int(field: str, label: str, *, maximum: int) -> int:
    value = _optional_int(field, label, minimum=1, maximum=maximum)
    if value is None:
        raise FormError(_("%(label)s is required.", label=label))
    return value
