"""Disputes (issue 6): file, route, answer, see ``disputed`` on lookups, council deadlines.

Neither side learns who the other is; the council sees both. Every test runs on SQLite
and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from clue_client import cli as member_cli
from clue_client.errors import NotFoundError, RateLimitedError, ValidationError
from clue_client.models import DisputeAnswers
from clue_client.tokens import encode_token
from clue_server import create_app, db
from clue_server.audit.models import AuditEvent
from clue_server.cli import main as server_cli
from clue_server.disputes import services
from clue_server.disputes.models import Dispute, DisputeReport
from clue_server.quotas import services as quotas
from clue_server.reports import services as reports
from clue_server.reports.models import Report
from clue_server.stats.models import DailyUsage
from tests.helpers import Creds, signed

PHONE = "090-1234-5678"
REASON = "The customer says the number was issued to them in March."


def _count(app: Any, model: Any) -> int:
    with db.session_scope(app) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _actions(app: Any) -> list[str]:
    with db.session_scope(app) as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


@pytest.fixture
def cast(make_member: Any, make_client: Any) -> dict[str, Any]:
    """A and B report the same phone; C is the data subject's provider; D only looks up."""
    people: dict[str, Any] = {}
    for name in ("A", "B", "C", "D"):
        creds = make_member(f"{name} Pay")
        client, adapter = make_client(creds)
        people[name] = (creds, client, adapter)
    for name, category in (("A", "card_theft"), ("B", "phishing")):
        people[name][1].register("phone", PHONE, category)
    return people


def _secrets_of(cast: dict[str, Any], *names: str) -> list[str]:
    return [v for n in names for v in (cast[n][0].member_id, f"{n} Pay")]


def test_full_flow_routes_answers_and_resolves_without_naming_anyone(
        app: Any, cast: dict[str, Any]) -> None:
    (_, client_a, adapter_a), (_, client_b, adapter_b) = cast["A"], cast["B"]
    (_, client_c, adapter_c), (_, client_d, _) = cast["C"], cast["D"]

    filed = client_c.open_dispute("phone", "+81 90-1234-5678", REASON)
    assert filed.status == "open" and filed.reports == 2
    deadline = filed.deadline
    assert dt.timedelta(days=13, hours=23) < deadline - db.utcnow() <= dt.timedelta(days=14)
    again = client_c.open_dispute("phone", PHONE, "asked twice")
    assert again == filed  # the open one comes back, no second dispute
    assert _count(app, Dispute) == 1

    mine_a = {r.id for r in client_a.reports()}
    seen_a = client_a.incoming_disputes()
    assert [d.id for d in seen_a] == [filed.id]
    assert seen_a[0].reason == REASON and seen_a[0].id_type == "phone"
    assert {r.id for r in seen_a[0].reports} == mine_a
    assert seen_a[0].reports[0].answer is None
    seen_b = client_b.incoming_disputes()
    assert {r.id for r in seen_b[0].reports} == {r.id for r in client_b.reports()}
    assert client_c.incoming_disputes() == [] and client_d.incoming_disputes() == []
    out = client_c.outgoing_disputes()
    assert out[0].answers == DisputeAnswers(withdraw=0, uphold=0, pending=2)
    assert client_a.outgoing_disputes() == []

    assert client_d.lookup(phone=PHONE)["phone"].disputed
    assert client_a.lookup(phone=PHONE)["phone"].disputed

    done_a = client_a.answer_dispute(filed.id, "withdraw", "Keyed in wrongly by our agent.")
    assert done_a.status == "open" and set(done_a.reports) == mine_a
    with db.session_scope(app) as session:
        assert session.get(Report, next(iter(mine_a))) is None  # withdrawn
    after_a = client_d.lookup(phone=PHONE)["phone"]
    assert after_a.reporters == 1 and after_a.categories == ("phishing",) and after_a.disputed
    with pytest.raises(ValidationError):
        client_a.answer_dispute(filed.id, "uphold", "changed my mind")  # answered already

    done_b = client_b.answer_dispute(filed.id, "uphold", "Chargeback confirmed.")
    assert done_b.status == "resolved"
    final = client_d.lookup(phone=PHONE)["phone"]
    assert final.matched and final.reporters == 1 and not final.disputed
    assert client_b.incoming_disputes() == []
    out = client_c.outgoing_disputes()[0]
    assert out.status == "resolved" and out.closed_at is not None
    assert out.answers == DisputeAnswers(withdraw=1, uphold=1, pending=0)
    actions = _actions(app)
    for action in ("dispute.open", "dispute.answer", "report.withdraw"):
        assert action in actions
    assert actions.count("dispute.answer") == 2

    # Privacy: nothing C received names A or B; nothing A or B received names C (or
    # each other).
    bodies_c = _answers(adapter_c)
    for secret in _secrets_of(cast, "A", "B"):
        assert secret.encode() not in bodies_c
    for adapter, other in ((adapter_a, "B"), (adapter_b, "A")):
        bodies = _answers(adapter)
        for secret in _secrets_of(cast, "C", other):
            assert secret.encode() not in bodies


def _answers(adapter: Any) -> bytes:
    """Every response body the adapter's member received (replayed through a recorder)."""
    return b"\n".join(adapter.seen)


@pytest.fixture(autouse=True)
def _record_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers import WSGIAdapter

    original = WSGIAdapter.send

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        response = original(self, request, **kwargs)
        if not hasattr(self, "seen"):
            self.seen = []
        self.seen.append(response.content)
        return response

    monkeypatch.setattr(WSGIAdapter, "send", send)


def test_filing_refusals_no_match_own_reports_and_not_routed(app: Any, cast: dict[str, Any],
                                                             http: Any) -> None:
    (_, client_a, _), (c, client_c, _), (d, _, _) = cast["A"], cast["C"], cast["D"]
    with pytest.raises(NotFoundError, match="no active report"):
        client_c.open_dispute("phone", "090-9999-0000", REASON)
    client_a.register("email", "only.mine@example.com", "phishing")
    with pytest.raises(ValidationError, match="withdraw"):
        client_a.open_dispute("email", "only.mine@example.com", REASON)
    assert _count(app, Dispute) == 0

    filed = client_c.open_dispute("phone", PHONE, REASON)
    # Not routed to the filer, nor to a bystander: the same 404 as a missing dispute.
    answers = []
    for creds, dispute_id in ((c, filed.id), (d, filed.id), (d, "d_0000000000000000")):
        response = signed(http, creds, "POST", f"/v1/disputes/{dispute_id}/answer",
                          {"answer": "withdraw", "reason": "not mine"})
        assert response.status_code == 404
        answers.append({k: v for k, v in response.get_json().items() if k != "detail"})
    assert answers[0] == answers[1] == answers[2]
    assert _count(app, Report) == 3  # nothing withdrawn


# -- issue 10, item 2: filing is a look-up ---------------------------------------------


def _usage(app: Any, member_id: str) -> tuple[int, int, int]:
    with db.session_scope(app) as session:
        row = session.get(DailyUsage, (db.utcnow().date(), member_id, "phone"))
        return (row.lookups, row.hits, row.quota_rejections) if row else (0, 0, 0)


def _set_lookups(app: Any, member_id: str, n: int) -> None:
    with db.session_scope(app) as session:
        quotas.set_member_quota(session, member_id, n, None, actor="test")


def test_filing_is_a_look_up_counted_against_the_quota_hit_or_miss(
        app: Any, cast: dict[str, Any]) -> None:
    (c, client_c, _) = cast["C"]
    _set_lookups(app, c.member_id, 3)
    filed = client_c.open_dispute("phone", PHONE, REASON)  # a hit: 201
    assert _usage(app, c.member_id) == (1, 1, 0)
    with pytest.raises(NotFoundError):  # a miss: 404, counted and audited all the same
        client_c.open_dispute("phone", "090-9999-0000", REASON)
    assert _usage(app, c.member_id) == (2, 1, 0)
    with db.session_scope(app) as session:
        miss = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "dispute.no_match")).one()
        assert (miss.actor, miss.details) == (c.member_id, {"id_type": "phone"})
    assert client_c.open_dispute("phone", PHONE, "again") == filed  # 200: still a look-up
    assert _usage(app, c.member_id) == (3, 2, 0)

    # The quota is used up: filing is refused like a look-up, and nothing is stored.
    before = (_count(app, Dispute), _count(app, AuditEvent))
    for phone in (PHONE, "090-9999-0000"):
        with pytest.raises(RateLimitedError) as refused:
            client_c.open_dispute("phone", phone, REASON)
        assert refused.value.problem["type"] == "urn:clue:problem:quota-exceeded"
        assert refused.value.retry_after
    with pytest.raises(RateLimitedError):
        client_c.lookup(phone=PHONE)
    assert (_count(app, Dispute), _count(app, AuditEvent)) == before
    assert _usage(app, c.member_id) == (3, 2, 3)


def test_a_miss_keeps_its_place_in_the_redis_quota(database_url: str, server_keys_dir: Any,
                                                   redis_url: str, make_member: Any) -> None:
    redis_app = create_app({"database_url": database_url, "server_keys_dir": server_keys_dir,
                            "redis_url": redis_url,
                            "quota_key_prefix": f"clue-test:{os.urandom(6).hex()}:"})
    try:
        http = redis_app.test_client()
        member = make_member("Filer Pay")
        _set_lookups(redis_app, member.member_id, 2)
        counter = redis_app.extensions["clue_lookup_counter"]
        today = db.utcnow().date()
        for _ in range(2):
            missed = signed(http, member, "POST", "/v1/disputes", _open())
            assert missed.status_code == 404
        assert counter.used(None, member.member_id, today) == 2
        assert signed(http, member, "POST", "/v1/disputes", _open()).status_code == 429
        # A request refused before it asked anything (bad body) takes nothing.
        assert signed(http, member, "POST", "/v1/disputes", _open(colour="red")
                      ).status_code == 400
        assert counter.used(None, member.member_id, today) == 2
    finally:
        db.dispose(redis_app)


def test_disputing_only_your_own_reports_says_how_to_withdraw_them(cast: dict[str, Any],
                                                                   app: Any) -> None:
    (a, client_a, _) = cast["A"]
    report = client_a.register("email", "only.mine@example.com", "phishing")
    with pytest.raises(ValidationError) as refused:
        client_a.open_dispute("email", "only.mine@example.com", REASON)
    assert f"clue withdraw {report.id}" in refused.value.detail
    assert refused.value.problem["report_ids"] == [report.id]
    assert _usage(app, a.member_id)[0] == 0  # e-mail, not phone: counted under its type
    with db.session_scope(app) as session:
        row = session.get(DailyUsage, (db.utcnow().date(), a.member_id, "email"))
        assert (row.lookups, row.hits) == (1, 1)


def test_a_folded_email_dispute_reaches_the_folded_report(cast: dict[str, Any]) -> None:
    (_, client_a, _), (_, client_c, _) = cast["A"], cast["C"]
    client_a.register("email", "Fraud.Ster+shop@gmail.com", "phishing")
    filed = client_c.open_dispute("email", "fraudster@gmail.com", REASON)
    assert filed.reports == 1
    assert client_a.incoming_disputes()[0].id == filed.id


def test_missed_deadline_suspends_only_the_silent_reporter(app: Any, cast: dict[str, Any],
                                                           database_url: str,
                                                           server_keys_dir: Any) -> None:
    (a, client_a, _), (b, _, _) = cast["A"], cast["B"]
    (_, client_c, _), (_, client_d, _) = cast["C"], cast["D"]
    filed = client_c.open_dispute("phone", PHONE, REASON)
    client_a.answer_dispute(filed.id, "uphold", "Confirmed.")
    env = {"CLUE_DATABASE_URL": database_url, "CLUE_SERVER_KEYS_DIR": str(server_keys_dir),
           "CLUE_REDIS_URL": None}
    runner = CliRunner()
    listed = runner.invoke(server_cli, ["dispute", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    row = json.loads(listed.output)[0]
    assert (row["id"], row["opened_by"], row["overdue"]) == (filed.id,
                                                            cast["C"][0].member_id, False)
    assert {e["reporter_id"]: e["answer"] for e in row["answers"]} == {
        a.member_id: "uphold", b.member_id: None}
    early = runner.invoke(server_cli, ["dispute", "suspend-overdue", "--yes"], env=env)
    assert "suspended 0 report(s)" in early.output

    with db.session_scope(app) as session:
        session.execute(update(Dispute).values(
            deadline=db.utcnow() - dt.timedelta(days=1),
            opened_at=db.utcnow() - dt.timedelta(days=15)))
    text = runner.invoke(server_cli, ["dispute", "list"], env=env)
    assert "OVERDUE" in text.output and "age 15d" in text.output and "B Pay" in text.output
    refused = runner.invoke(server_cli, ["dispute", "suspend-overdue"], env=env, input="n\n")
    assert refused.exit_code != 0 and "suspend up to 1 report(s)" in refused.output
    done = runner.invoke(server_cli, ["dispute", "suspend-overdue", "--yes"], env=env)
    assert done.exit_code == 0 and "suspended 1 report(s)" in done.output, done.output

    with db.session_scope(app) as session:
        by_member = {r.member_id: r.suspended_at for r in session.scalars(select(Report))}
        assert by_member[a.member_id] is None and by_member[b.member_id] is not None
        assert session.get(Dispute, filed.id).status == "expired"
        event = session.scalars(select(AuditEvent).where(
            AuditEvent.action == "dispute.suspend_overdue")).one()
        assert event.details["count"] == 1
        assert services.list_disputes(session, db.utcnow()) == []
        closed = services.list_disputes(session, db.utcnow(), include_closed=True)
        assert closed[0]["status"] == "expired" and not closed[0]["overdue"]
    found = client_d.lookup(phone=PHONE)["phone"]
    assert found.reporters == 1 and found.categories == ("card_theft",) and not found.disputed
    assert client_c.outgoing_disputes()[0].answers.to_json() == {"withdraw": 0, "uphold": 1,
                                                          "pending": 1}
    # A suspended report is not disputable any more; A's still is.
    assert client_c.open_dispute("phone", PHONE, "again").reports == 1


def test_suspend_overdue_service_names_one_dispute(app: Any, cast: dict[str, Any]) -> None:
    (_, client_c, _) = cast["C"]
    filed = client_c.open_dispute("phone", PHONE, REASON)
    with db.session_scope(app) as session:
        with pytest.raises(services.ValidationFailed, match="not overdue"):
            services.suspend_overdue(session, db.utcnow(), "staff:alice", dispute_id=filed.id)
        with pytest.raises(services.NotFound):
            services.suspend_overdue(session, db.utcnow(), "staff:alice", dispute_id="d_x\0")
        later = db.utcnow() + dt.timedelta(days=15)
        assert services.list_disputes(session, later)[0]["overdue"]
        assert services.suspend_overdue(session, later, "staff:alice",
                                        dispute_id=filed.id) == 2


def test_purge_expired_removes_disputes_whose_reports_all_went(app: Any,
                                                              cast: dict[str, Any]) -> None:
    (_, client_a, _), (_, client_c, _) = cast["A"], cast["C"]
    client_a.register("ip", "9.9.9.9", "phishing", expires_in_days=1)
    short = client_c.open_dispute("ip", "9.9.9.9", REASON)
    long = client_c.open_dispute("phone", PHONE, REASON)
    with db.session_scope(app) as session:
        reports.purge_expired(session, now=db.utcnow() + dt.timedelta(days=2))
    with db.session_scope(app) as session:
        assert session.get(Dispute, short.id) is None
        assert session.get(Dispute, long.id) is not None
        left = set(session.scalars(select(DisputeReport.dispute_id)))
        assert left == {long.id}
    assert "dispute.purge_expired" in _actions(app)


# -- hostile input --------------------------------------------------------------------


def _token() -> str:
    return encode_token(os.urandom(32))


def _open(**fields: Any) -> dict[str, Any]:
    body = {"type": "phone", "key_version": 1, "token": _token(), "reason": REASON}
    return {k: v for k, v in {**body, **fields}.items() if v is not ...}


BAD_OPEN: list[tuple[str, Any, int]] = [
    ("root is an array", [_open()], 400),
    ("unknown field", _open(colour="red"), 400),
    ("missing reason", _open(reason=...), 400),
    ("missing token", _open(token=...), 400),
    ("reason not a string", _open(reason=7), 422),
    ("empty reason", _open(reason="   "), 422),
    ("huge reason", _open(reason="x" * 1001), 422),
    ("NUL in reason", _open(reason="ok\0then"), 422),
    ("unknown type", _open(type="fax"), 422),
    ("type not a string", _open(type=["phone"]), 400),
    ("short token", _open(token="abc"), 422),
    ("padded token", _open(token=_token()[:42] + "="), 422),
    ("NUL in token", _open(token="\0" * 43), 422),
    ("key_version zero", _open(key_version=0), 422),
    ("key_version string", _open(key_version="1"), 400),
    ("folded_token on phone", _open(folded_token=_token()), 422),
]


def test_hostile_dispute_bodies_are_refused_and_nothing_stored(
        app: Any, http: Any, make_member: Any) -> None:
    creds = make_member()
    for name, body, status in BAD_OPEN:
        response = signed(http, creds, "POST", "/v1/disputes", body)
        assert response.status_code == status, (name, response.get_json())
        assert response.mimetype == "application/problem+json", name
        assert "pointer" in response.get_json(), name
    assert _count(app, Dispute) == 0


def test_hostile_raw_bodies_ids_and_queries(app: Any, http: Any, cast: dict[str, Any]) -> None:
    creds: Creds = cast["A"][0]
    filed = cast["C"][1].open_dispute("phone", PHONE, REASON)
    for raw in (b"{", b"\xff\xfe", b"NaN", b"[" * 100_000, b'{"answer": "withdraw"'):
        for path in ("/v1/disputes", f"/v1/disputes/{filed.id}/answer"):
            response = signed(http, creds, "POST", path, raw=raw)
            assert response.status_code == 400, (path, raw[:10])
    huge = json.dumps(_open(reason="x" * 2_000_000)).encode()
    assert signed(http, creds, "POST", "/v1/disputes", raw=huge).status_code == 413
    assert signed(http, creds, "POST", "/v1/disputes", raw=b"a=b",
                  headers={"Content-Type": "application/x-www-form-urlencoded"}
                  ).status_code == 415
    for bad_answer, status in (({"answer": "delete", "reason": "x"}, 422),
                               ({"answer": None, "reason": "x"}, 422),
                               ({"answer": "uphold", "reason": "x" * 1001}, 422),
                               ({"answer": "uphold"}, 400),
                               ({"answer": "uphold", "reason": "x", "by": "me"}, 400)):
        path = f"/v1/disputes/{filed.id}/answer"
        assert signed(http, creds, "POST", path, bad_answer).status_code == status, bad_answer
    for bad_id in ("%00", "d_" + "0" * 200, "..%2F..%2Freports", "%F0%9F%92%A5", "%27%3B%20DROP"):
        response = signed(http, creds, "POST", f"/v1/disputes/{bad_id}/answer",
                          {"answer": "withdraw", "reason": "x"})
        assert response.status_code == 404, bad_id
    for path in ("/v1/disputes/incoming?all=1", "/v1/disputes/outgoing?x=%00"):
        assert signed(http, creds, "GET", path).status_code == 400
    assert signed(http, creds, "GET", "/v1/disputes").status_code == 405
    with db.session_scope(app) as session:  # nothing answered, nothing withdrawn
        assert session.scalar(select(func.count()).select_from(DisputeReport).where(
            DisputeReport.answer.is_not(None))) == 0
    assert _count(app, Report) == 2


# -- the member CLI -------------------------------------------------------------------


def test_member_cli_open_list_and_answer(cast: dict[str, Any],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    clients = {"A": cast["A"][1], "C": cast["C"][1], "D": cast["D"][1]}
    who = {"name": "C"}
    monkeypatch.setattr(member_cli, "_client", lambda ctx: clients[who["name"]])
    runner = CliRunner()

    opened = runner.invoke(member_cli.main, ["dispute", "open", "--phone", PHONE,
                                             "--reason", REASON])
    assert opened.exit_code == 0 and "routed to 2 report(s)" in opened.output, opened.output
    dispute_id = opened.output.split()[1]
    assert runner.invoke(member_cli.main, ["dispute", "open", "--type", "phone",
                                           "--reason", "x"]).exit_code == 2
    missing = runner.invoke(member_cli.main, ["dispute", "open", "--type", "ip", "149.112.112.112",
                                              "--reason", "x"])
    assert missing.exit_code == 1 and "404" in missing.output
    out = json.loads(runner.invoke(member_cli.main, ["disputes", "--outgoing", "--json"]).output)
    assert out[0]["answers"]["pending"] == 2

    who["name"] = "D"
    assert "DISPUTED" in runner.invoke(member_cli.main, ["lookup", "--phone", PHONE]).output

    who["name"] = "A"
    listed = runner.invoke(member_cli.main, ["disputes"])
    assert dispute_id in listed.output and REASON in listed.output
    answered = runner.invoke(member_cli.main, ["dispute", "answer", dispute_id, "uphold",
                                               "--reason", "Confirmed."])
    assert answered.exit_code == 0 and "uphold for 1 report(s)" in answered.output
    again = runner.invoke(member_cli.main, ["dispute", "answer", dispute_id, "uphold",
                                            "--reason", "Confirmed."])
    assert again.exit_code == 1 and "already answered" in again.output


def exercise_disputes(client_filer: Any, client_reporter: Any, id_type: str, value: str
                      ) -> None:
    """Every /v1/disputes operation once, through the SDK (used by test_openapi)."""
    filed = client_filer.open_dispute(id_type, value, REASON)  # 201
    assert client_filer.open_dispute(id_type, value, REASON) == filed  # 200
    assert client_reporter.incoming_disputes()[0].id == filed.id
    assert client_filer.outgoing_disputes()[0].answers.pending == 1
    with pytest.raises(NotFoundError):
        client_filer.answer_dispute(filed.id, "uphold", "not mine to answer")
    assert client_reporter.answer_dispute(filed.id, "uphold", "Confirmed.").status == "resolved"
    with pytest.raises(ValidationError):
        client_reporter.open_dispute(id_type, value, "only my own reports")  # 422
    assert client_filer.lookup_many([(id_type, value)])[0].disputed is False
