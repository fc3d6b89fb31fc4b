"""The sync SDK's transport against a fake CLUE on a real socket (issues 9, 11, 12).

Keep-alive and many threads on one client; one deadline per call that a silent or a
trickling server cannot stretch, and abandoned decision work that ends with it;
unsigned proxy answers retried but never accepted; CLUE's signed 503 retried after
its Retry-After; every malformed signed answer a typed error; the local clock's
offset measured and named when a request or an answer is refused for time.
"""

from __future__ import annotations

import email.utils
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import keys
from clue_client import (
    AuthenticationError,
    ClockSkewError,
    ClueClient,
    DeadlineExceeded,
    GatewayError,
    MalformedResponseError,
    RequestClockSkewError,
    ResponseClockSkewError,
    ResponseVerificationError,
    TransportError,
    UnavailableError,
)
from clue_client.decisions import Fallback
from clue_client.models import ReportInput
from clue_server.keystore import load_server_keys
from tests.fakeclue import FakeClue, Reply
from tests.functional.test_decisions import FORGED, GENUINE, STORE_ID
from tests.helpers import BASE_URL, WSGIAdapter

UNAVAILABLE = "urn:clue:problem:unavailable"


@pytest.fixture
def fake():
    with FakeClue() as server:
        yield server


def _elapsed(call):
    started = time.monotonic()
    try:
        call()
    except Exception as exc:
        return time.monotonic() - started, exc
    return time.monotonic() - started, None


# -- keep-alive and threads --------------------------------------------------------------------


def test_one_connection_serves_many_calls(fake):
    fake.default = fake.lookups()
    with fake.client() as client:
        for n in range(30):
            assert client.lookup(phone=f"090-1234-{n:04d}")["phone"].matched is False
        assert fake.connections == 1
        assert client._http.pool.opened == 1
        assert len({r.connection for r in fake.requests}) == 1
        assert len({r.headers["signature-input"] for r in fake.requests}) == 30  # fresh nonces


def test_many_threads_share_one_client(fake):
    fake.default = fake.lookups(matched=True)
    client = fake.client()
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for n in range(20):
                result = client.lookup(phone=f"090-{1000 + thread}-{n:04d}")["phone"]
                assert result.matched and result.value == f"090-{1000 + thread}-{n:04d}"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(fake.requests) == 160
    # Each thread borrows a connection and gives it back: never more than the threads.
    assert fake.connections <= 8
    assert client._http.pool.idle <= 8
    client.close()
    assert client._http.pool.idle == 0
    with pytest.raises(TransportError, match="closed"):
        client.ping()


def test_a_connection_the_server_closed_while_idle_is_not_used(fake):
    fake.script = [lambda request: Reply(fake.signed(200, {"pong": True})(request).data,
                                         close=True)]
    with fake.client() as client:
        client.ping()
        deadline = time.monotonic() + 2
        while fake.finished < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        # Not retryable: it must not be sent on a dead connection and fail.
        client.withdraw("r_0000000000000000")
    assert fake.connections == 2
    assert [r.method for r in fake.requests] == ["GET", "DELETE"]


# -- one deadline per call ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["silent", "trickle"])
def test_a_silent_or_trickling_server_ends_at_the_deadline(fake, how):
    fake.default = (fake.silent if how == "silent"
                    else fake.lookups(trickle=0.1))  # one byte per 100 ms: minutes in all
    client = fake.client(timeout=0.5, retries=2)
    elapsed, error = _elapsed(lambda: client.lookup(phone="090-1234-5678"))
    assert isinstance(error, DeadlineExceeded), error
    assert isinstance(error, TransportError) and isinstance(error, TimeoutError)
    assert error.timeout == 0.5
    assert str(error).endswith("within 500 ms")
    assert 0.45 < elapsed < 0.8, elapsed
    # Per call, whatever the client's default.
    elapsed, error = _elapsed(lambda: client.register("phone", "090-1234-5678", "other",
                                                      timeout=0.2))
    assert isinstance(error, DeadlineExceeded) and 0.15 < elapsed < 0.45, elapsed
    # The client hung up at the deadline: the server sees every connection end.
    deadline = time.monotonic() + 3
    while fake.finished < fake.connections and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.finished == fake.connections


def test_retries_and_back_off_stay_within_the_deadline(fake):
    fake.default = fake.unsigned(502)
    client = fake.client(timeout=0.25, retries=10)
    elapsed, error = _elapsed(lambda: client.lookup(phone="090-1234-5678"))
    assert isinstance(error, GatewayError | DeadlineExceeded), error
    assert elapsed < 0.4, elapsed
    assert 2 <= len(fake.requests) <= 3  # 0.1 s, then 0.2 s back-off would pass 0.25 s


def test_abandoned_decision_work_ends_at_its_deadline_and_the_pool_recovers(fake):
    """Issue 11.7: checks abandoned on a trickle used to hold the 16 pool threads for minutes,
    after which every check in the process fell back even with CLUE healthy."""
    fake.default = fake.lookups(trickle=0.1)
    slow = fake.client(fallback=Fallback("watch", 300))
    with ThreadPoolExecutor(24) as callers:
        decisions = list(callers.map(lambda n: slow.check_signup(phone=f"090-5555-{n:04d}"),
                                     range(24)))
    assert all(d.degraded and d.error.startswith("DeadlineExceeded") for d in decisions)
    with FakeClue() as healthy:
        healthy.default = healthy.lookups(matched=False)
        good = healthy.client(fallback=Fallback("block", 2000))
        time.sleep(0.1)
        decision = good.check_signup(phone="090-1234-5678")
        assert not decision.degraded, decision.error
        assert decision.tier == "clear"
    # And the trickling server saw every abandoned connection closed.
    deadline = time.monotonic() + 3
    while fake.finished < fake.connections and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.finished == fake.connections


# -- proxies and outages -----------------------------------------------------------------------


def test_unsigned_gateway_answers_are_retried_with_fresh_signatures(fake):
    fake.script = [fake.unsigned(502), fake.unsigned(504)]
    fake.default = fake.lookups(matched=True)
    client = fake.client()
    assert client.lookup(phone="090-1234-5678")["phone"].matched is True
    nonces = {r.headers["signature-input"] for r in fake.requests}
    assert len(fake.requests) == 3 and len(nonces) == 3


def test_an_unsigned_gateway_answer_is_never_accepted_as_a_result(fake):
    fake.default = fake.unsigned(503, b'{"results": [{"matched": false}]}')
    client = fake.client(retries=2)
    with pytest.raises(GatewayError) as caught:
        client.lookup(phone="090-1234-5678")
    assert isinstance(caught.value, ResponseVerificationError)
    assert caught.value.status == 503
    assert len(fake.requests) == 3
    # Not retryable (a withdrawal): one attempt, the same refusal.
    with pytest.raises(GatewayError):
        client.withdraw("r_0000000000000000")
    assert len(fake.requests) == 4
    # Any other unsigned status is refused at once.
    fake.default = fake.unsigned(500)
    with pytest.raises(ResponseVerificationError, match="refusing the server's answer"):
        client.ping()
    assert len(fake.requests) == 5


def test_a_signed_503_is_retried_after_its_retry_after(fake):
    fake.script = [fake.problem(503, UNAVAILABLE, "database unreachable",
                                headers={"Retry-After": "1"})]
    fake.default = fake.lookups()
    client = fake.client(timeout=3)
    elapsed, error = _elapsed(lambda: client.lookup(phone="090-1234-5678"))
    assert error is None
    assert 1.0 <= elapsed < 2.0
    assert len(fake.requests) == 2


def test_a_retry_after_past_the_deadline_is_not_waited_for(fake):
    fake.default = fake.problem(503, UNAVAILABLE, "redis unreachable",
                                headers={"Retry-After": "30"})
    client = fake.client(timeout=2)
    elapsed, error = _elapsed(lambda: client.lookup(phone="090-1234-5678"))
    assert isinstance(error, UnavailableError), error
    assert error.retry_after == 30 and error.type == UNAVAILABLE
    assert elapsed < 0.5 and len(fake.requests) == 1


def test_redirects_are_not_followed(fake):
    fake.default = lambda request: Reply(b"HTTP/1.1 302 Found\r\nLocation: http://evil.test/"
                                         b"\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(ResponseVerificationError):
        fake.client().ping()
    assert len(fake.requests) == 1


# -- every malformed answer is a typed error --------------------------------------------------


REPORT = {"id": "r_1", "type": "phone", "category": "other", "key_version": 1,
          "created_at": "2024-01-01T00:00:00Z", "expires_at": "2025-01-01T00:00:00Z"}
DISPUTE = {"id": "d_1", "type": "phone", "reason": "x", "opened_at": "2024-01-01T00:00:00Z",
           "deadline": "2024-01-15T00:00:00Z"}


def _calls():
    return {
        "ping": lambda c: c.ping(),
        "me": lambda c: c.me(),
        "server_key_info": lambda c: c.server_key_info(),
        "network_directory": lambda c: c.network_directory(),
        "my_envelopes": lambda c: c.my_envelopes(),
        "lookup": lambda c: c.lookup(phone="090-1234-5678"),
        "lookup_many": lambda c: c.lookup_many([("email", "a@example.com")]),
        "register": lambda c: c.register("phone", "090-1234-5678", "other"),
        "register_many": lambda c: c.register_many([ReportInput("ip", "1.1.1.1", "other")]),
        "reports": lambda c: list(c.reports()),
        "find_reports": lambda c: c.find_reports([("phone", "090-1234-5678")]),
        "limits": lambda c: c.limits(),
        "open_dispute": lambda c: c.open_dispute("phone", "090-1234-5678", "reason"),
        "incoming_disputes": lambda c: c.incoming_disputes(),
        "outgoing_disputes": lambda c: c.outgoing_disputes(),
        "answer_dispute": lambda c: c.answer_dispute("d_1", "uphold", "reason"),
        "report_sticker_swap": lambda c: c.report_sticker_swap(FORGED, STORE_ID),
    }


MALFORMED = [
    ("ping", []), ("me", "me"), ("server_key_info", [1]), ("network_directory", None),
    ("my_envelopes", {}), ("my_envelopes", {"envelopes": ["x"]}),
    ("lookup", {}), ("lookup", {"results": []}), ("lookup", {"results": [{}]}),
    ("lookup", {"results": [{"matched": "yes"}]}),
    ("lookup_many", {"results": [{"matched": True, "match": "fuzzy"}]}),
    ("lookup_many", {"results": [{"matched": True, "categories": "card_theft"}]}),
    ("lookup_many", {"results": [{"matched": True, "first_reported": "yesterday"}]}),
    ("register", {}), ("register", {"reports": []}), ("register", {"reports": [{"id": 1}]}),
    ("register", {"reports": [{**REPORT, "key_version": "1"}]}),
    ("register_many", {"reports": [{**REPORT, "created_at": None}]}),
    ("reports", {"reports": {}}), ("reports", {"reports": [], "next_after": 7}),
    ("find_reports", {}), ("find_reports", {"results": []}),
    ("find_reports", {"results": ["x"]}), ("find_reports", {"results": [{"exact": []}]}),
    ("find_reports", {"results": [{"exact": [{"id": "r_1"}], "folded": []}]}),
    ("find_reports", {"results": [{"exact": [], "folded": [{**REPORT,
                                                             "suspended_at": "never"}]}]}),
    ("limits", []), ("limits", "limits"),
    ("open_dispute", {"id": "d_1"}), ("open_dispute", {"id": "d_1", "status": "open",
                                                       "deadline": "soon", "reports": 1}),
    ("incoming_disputes", {"disputes": [{**DISPUTE, "reports": [{}]}]}),
    ("incoming_disputes", {"disputes": [{**DISPUTE, "status": 7}]}),
    ("incoming_disputes", {"disputes": [{**DISPUTE, "reports": [{"id": "r_1",
                                                                 "suspended_at": 1}]}]}),
    ("outgoing_disputes", {"disputes": [{**DISPUTE, "status": "open", "answers": []}]}),
    ("answer_dispute", {"id": "d_1", "answer": "uphold", "reports": "r_1",
                        "status": "open"}),
    ("report_sticker_swap", {"reports": [REPORT]}),  # two asked, one answered
]


@pytest.mark.parametrize(("method", "body"), MALFORMED,
                         ids=[f"{m}-{i}" for i, (m, _) in enumerate(MALFORMED)])
def test_a_signed_answer_of_the_wrong_shape_is_a_typed_error(fake, method, body):
    fake.default = fake.signed(200 if method != "open_dispute" else 201, body)
    client = fake.client(notes_key=keys.new_symmetric_key("member-notes", 1))
    with pytest.raises(MalformedResponseError) as caught:
        _calls()[method](client)
    assert isinstance(caught.value, ResponseVerificationError)


def test_every_method_is_covered_by_the_malformed_answers():
    assert {m for m, _ in MALFORMED} == set(_calls())


def test_a_signed_answer_that_is_not_json(fake):
    fake.default = fake.signed(200, b"<html>ok</html>", content_type="text/html")
    with pytest.raises(MalformedResponseError, match="not JSON"):
        fake.client().ping()


def test_an_oversized_answer_is_refused(fake, monkeypatch):
    monkeypatch.setattr("clue_client._http.MAX_ANSWER_BYTES", 1000)
    fake.default = fake.signed(200, {"pong": True, "padding": "x" * 5000})
    with pytest.raises(TransportError, match="exceeds 1000 bytes"):
        fake.client(retries=0).ping()


def test_header_injection_is_refused_before_sending(fake):
    with pytest.raises(ValueError, match="printable ASCII"):
        fake.client().register("phone", "090-1234-5678", "other",
                               idempotency_key="k\r\nX-Evil: 1")
    assert fake.requests == []


# -- clocks ----------------------------------------------------------------------------------


def test_an_answer_dated_within_the_tolerance_is_accepted_and_the_offset_measured(fake):
    """Issue 11.6: a client 15-299 s behind the server used to refuse answers (10 s)."""
    fake.default = fake.signed(200, {"pong": True}, skew=200)
    client = fake.client()
    assert client.clock_offset is None
    assert client.ping() == {"pong": True}
    assert client.clock_offset == pytest.approx(200, abs=1.5)


def test_an_answer_dated_too_far_ahead_names_the_clock(fake):
    fake.default = fake.signed(200, {"pong": True}, skew=400)
    with pytest.raises(ResponseClockSkewError) as caught:
        fake.client().ping()
    error = caught.value
    assert isinstance(error, ClockSkewError) and isinstance(error, ResponseVerificationError)
    assert error.offset == pytest.approx(400, abs=1.5)
    assert "this machine's clock is about 400 s behind the server's" in str(error)
    assert "300 s either way" in str(error)


@pytest.mark.parametrize(("skew", "detail", "way"), [
    (400, "the signature is 400 s old; at most 300 s allowed", "behind"),
    (-350, "the signature was created 350 s in the future", "ahead of"),
])
def test_a_request_refused_for_time_names_the_clock(fake, skew, detail, way):
    # The server's answer is dated by its own clock: within tolerance of ours when it is
    # behind us (skew < 0), so the refusal itself verifies either way... except when the
    # server is ahead by more than the tolerance, tested above; sign this one at "now".
    refusal = fake.problem(401, "urn:clue:problem:unauthenticated", detail)

    def dated(request):
        reply = refusal(request)
        assert reply.data is not None
        head, _, body = reply.data.partition(b"\r\n\r\n")
        lines = [line for line in head.split(b"\r\n") if not line.startswith(b"Date:")]
        lines.append(b"Date: " + email.utils.formatdate(time.time() + skew,
                                                        usegmt=True).encode())
        return Reply(b"\r\n".join(lines) + b"\r\n\r\n" + body)

    fake.default = dated
    with pytest.raises(RequestClockSkewError) as caught:
        fake.client().ping()
    error = caught.value
    assert isinstance(error, AuthenticationError) and isinstance(error, ClockSkewError)
    assert error.status == 401 and error.detail == detail
    assert error.offset == pytest.approx(skew, abs=1.5)
    assert f"about {abs(skew)} s {way} the server's" in str(error)


def test_other_401s_are_not_blamed_on_the_clock(fake):
    fake.default = fake.problem(401, "urn:clue:problem:unauthenticated",
                                "unknown or revoked key")
    with pytest.raises(AuthenticationError) as caught:
        fake.client().ping()
    assert not isinstance(caught.value, ClockSkewError)


def test_a_client_clock_far_behind_is_named_by_the_real_server(app, make_member,
                                                               server_keys_dir):
    """In-process app (no Date header): the server's own refusal names the time."""
    creds = make_member()
    server = load_server_keys(server_keys_dir)
    session = requests.Session()
    session.mount(BASE_URL, WSGIAdapter(app))
    client = ClueClient(BASE_URL, signing_key=creds.signing_key,
                        server_public_key=server.public_key, server_key_id=server.signing_key_id,
                        network_keys=None, session=session, retries=0,
                        clock=lambda: time.time() - 400)
    with pytest.raises(RequestClockSkewError, match="clock") as caught:
        client.ping()
    assert "400 s" in caught.value.detail
    assert caught.value.status == 401


def test_the_servers_own_clock_offset_is_used_without_a_date_header(fake):
    refusal = fake.signed(401, {"type": "urn:clue:problem:unauthenticated", "status": 401,
                                "title": "Request signature rejected",
                                "detail": "the signature is too old: created 412 s ago",
                                "clock_offset_seconds": -412})

    def without_date(request):
        reply = refusal(request)
        head, _, body = reply.data.partition(b"\r\n\r\n")
        lines = [line for line in head.split(b"\r\n") if not line.startswith(b"Date:")]
        return Reply(b"\r\n".join(lines) + b"\r\n\r\n" + body)

    fake.default = without_date
    with pytest.raises(RequestClockSkewError, match="about 412 s behind the server's") as caught:
        fake.client().ping()
    assert caught.value.offset == 412


# -- check_static_qr falls back like check_signup --------------------------------------------


@pytest.mark.parametrize(("fallback", "blocks"), [("watch", False), ("block", True)])
def test_check_static_qr_falls_back_within_its_deadline(fake, fallback, blocks):
    fake.default = fake.silent
    client = fake.client(fallback=Fallback(fallback, 5000))  # the call's own budget wins
    started = time.monotonic()
    check = client.check_static_qr(GENUINE, timeout=0.3)
    elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 0.6
    # The payee and store flags are unknown, not clean: absent, and the reasons say so.
    assert check.degraded and check.flags == frozenset() and check.payees == ()
    assert check.tier == fallback and check.block is blocks
    assert check.error.startswith("DeadlineExceeded")
    assert check.store_id == STORE_ID
    assert check.reasons[0].startswith("CLUE unavailable (DeadlineExceeded")
    assert "qr_payee not checked: CLUE unavailable" in check.reasons
    assert len(fake.requests) == 1  # one try: no retries inside a decision's budget
    # Without timeout= the budget is the policy's fallback.timeout_ms, not the client's
    # 2 s timeout.
    strict = fake.client(strict=True, fallback=Fallback("watch", 200))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        strict.check_static_qr(GENUINE)
    assert time.monotonic() - started < 0.5
    # An unreadable code is blocked locally: nothing sent, nothing to fall back from.
    before = len(fake.requests)
    assert client.check_static_qr("not a code").block
    assert len(fake.requests) == before


@pytest.mark.parametrize(("skew", "says"), [
    (0, "clock: in step with the server (within 1 s); ok"),
    (120, "clock: about 120 s behind the server's (CLUE allows 300 s); ok"),
    (-200, "clock: about 200 s ahead of the server's (CLUE allows 300 s); synchronise"),
])
def test_clue_ping_reports_the_clock_offset(fake, monkeypatch, skew, says):
    from click.testing import CliRunner

    from clue_client import cli

    fake.default = fake.signed(200, {"pong": True, "member_id": "m_1"}, skew=skew)
    client = fake.client()
    monkeypatch.setattr(cli, "_client", lambda ctx: client)
    result = CliRunner().invoke(cli.main, ["ping"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "ok: signed in as member m_1"
    assert lines[1].startswith(says), lines[1]


def test_clue_ping_names_a_clock_beyond_the_tolerance(fake, monkeypatch):
    from click.testing import CliRunner

    from clue_client import cli

    fake.default = fake.signed(200, {"pong": True, "member_id": "m_1"}, skew=500)
    client = fake.client()
    monkeypatch.setattr(cli, "_client", lambda ctx: client)
    result = CliRunner().invoke(cli.main, ["ping"])
    assert result.exit_code == 1
    assert "about 500 s behind the server's" in result.output


def test_a_forked_child_does_not_use_its_parents_connections(fake):
    """A gunicorn worker forked after the client was made (preload_app) opens its own."""
    import os

    client = fake.client()
    client.ping()
    assert client._http.pool.idle == 1
    pid = os.fork()
    if pid == 0:  # the child: one call, then out without running the parent's cleanup
        code = 1
        try:
            code = 0 if client.ping() == {"pong": True} else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.ping()  # the parent's own connection still works
    assert [r.connection for r in fake.requests] == [0, 1, 0]


def test_a_signed_503_is_retried_even_for_a_call_that_is_not_repeatable(fake):
    """CLUE's signed 503 says nothing was done: a withdrawal may be sent again (signed
    afresh); an unsigned proxy 503 may hide a withdrawal that happened, so it is not."""
    fake.script = [fake.problem(503, "urn:clue:problem:store-restarted",
                                "the replay store restarted; sign again",
                                headers={"Retry-After": "0"})]
    fake.default = fake.signed(204, b"", content_type="application/json")
    client = fake.client()
    client.withdraw("r_0000000000000001")
    assert [r.method for r in fake.requests] == ["DELETE", "DELETE"]
    assert fake.requests[0].headers["signature"] != fake.requests[1].headers["signature"]
