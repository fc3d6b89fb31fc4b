"""AsyncClueClient (issue 12): the sync client's surface, awaited, on the same code.

Against the in-process app (SQLite and PostgreSQL) through a real ``httpx.AsyncClient``
and against the fake CLUE on a real socket: keep-alive under concurrency, one deadline
per call, retries, malformed answers, clock skew and the decision fallbacks.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import keys
from clue_client import (
    AsyncClueClient,
    ClueClient,
    DeadlineExceeded,
    GatewayError,
    MalformedResponseError,
    RequestClockSkewError,
    ResponseVerificationError,
    TransportError,
)
from clue_client.decisions import Fallback
from clue_client.models import DisputeAnswers, ReportInput
from clue_server.keystore import load_server_keys
from tests.fakeclue import FakeClue
from tests.functional.test_decisions import FORGED, GENUINE, STORE_ID
from tests.functional.test_privacy import _find, _identifier_needles
from tests.helpers import BASE_URL, AsyncWSGITransport, Creds

PHONE = "090-1234-5678"
EMAIL = "Taro.Yamada+shop@Gmail.com"


def test_the_async_client_has_the_sync_clients_surface():
    def public(cls: type) -> dict[str, inspect.Signature]:
        return {name: inspect.signature(member) for name, member in vars(cls).items()
                if callable(member) and not name.startswith("_")}

    sync, aio = public(ClueClient), public(AsyncClueClient)
    assert set(sync) - {"close"} <= set(aio)  # aclose (and close) on the async side
    for name, signature in sync.items():
        if name in ("close", "from_config"):
            continue
        assert inspect.iscoroutinefunction(getattr(AsyncClueClient, name)) or (
            inspect.isasyncgenfunction(getattr(AsyncClueClient, name))), name
        assert list(aio[name].parameters) == list(signature.parameters), name


# -- against the in-process app ----------------------------------------------------------------


@pytest.fixture
def make_async(app: Any, network_keys: keys.Keyring, server_keys_dir: Path) -> Any:
    server = load_server_keys(server_keys_dir)

    def make(creds: Creds, **options: Any) -> tuple[AsyncClueClient, AsyncWSGITransport]:
        transport = AsyncWSGITransport(app)
        options.setdefault("fallback", Fallback("watch", 10_000))
        options.setdefault("private_lookups", False)  # requests counted: protocol 1
        client = AsyncClueClient(BASE_URL, signing_key=creds.signing_key,
                                 server_public_key=server.public_key,
                                 server_key_id=server.signing_key_id, network_keys=network_keys,
                                 http_client=httpx.AsyncClient(transport=transport), retries=0,
                                 notes_key=keys.new_symmetric_key("member-notes", 1), **options)
        return client, transport

    return make


def test_the_async_client_end_to_end_in_process(make_member, make_client, make_async):
    alice, _ = make_client(make_member("Alice Pay"))
    bob_creds, carol_creds = make_member("Bob Pay"), make_member("Carol Pay")

    async def scenario() -> None:
        bob, bob_wire = make_async(bob_creds)
        async with bob, make_async(carol_creds)[0] as carol:
            assert (await bob.ping())["pong"] is True
            made = await bob.register_many([ReportInput("phone", PHONE, "card_theft",
                                                        note="seen at checkout"),
                                            ReportInput("email", EMAIL, "phishing")])
            assert [r.created for r in made] == [True, True]
            again = await bob.register("phone", "+81 90 1234 5678", "card_theft")
            assert again.id == made[0].id and again.created is False
            mine = [r async for r in bob.reports(page_size=1)]
            assert [r.id for r in mine] == [r.id for r in made]
            assert mine[0].note == "seen at checkout"
            # Own reports by value (sync and async alike), and the published limits.
            found = await bob.find_reports([("phone", PHONE), ("email", "taroyamada@gmail.com")])
            assert [([r.id for r in e], [r.id for r in f]) for e, f in found] == [
                ([made[0].id], []), ([], [made[1].id])]
            bob_sync, _ = make_client(bob_creds)  # the sync client, as the same member
            bob_sync.notes_key = bob.notes_key
            assert found == bob_sync.find_reports([("phone", PHONE),
                                                   ("email", "taroyamada@gmail.com")])
            assert await carol.find_reports([("phone", PHONE)]) == [([], [])]
            limits = await bob.limits()
            assert limits["max_batch_items"] == 1000
            assert limits["quotas"]["registrations"]["used"] == 2  # the repeat was free

            # Carol (async) and Alice (sync) see the same answers.
            seen = await carol.lookup(phone="０９０-1234-5678", email="taroyamada@gmail.com")
            assert seen == alice.lookup(phone="０９０-1234-5678", email="taroyamada@gmail.com")
            assert seen["phone"].matched and seen["email"].match == "folded"
            many = await carol.lookup_many([("ip", "8.8.8.8"), {"type": "phone",
                                                                  "value": PHONE}])
            assert [r.matched for r in many] == [False, True]

            decision = await carol.check_signup(phone=PHONE, email=EMAIL)
            assert (decision.tier, decision.degraded) == ("block", False)
            same = alice.check_signup(phone=PHONE, email=EMAIL)  # the sync client's decision
            assert (same.tier, same.reasons, same.evidence) == (
                decision.tier, decision.reasons, decision.evidence)
            payment = await carol.check_payment(phone="090-8765-4321", amount_jpy=5000,
                                                qr_payload=GENUINE)
            assert payment.tier == "clear" and not payment.degraded

            swapped = await bob.report_sticker_swap(FORGED, STORE_ID)
            assert [r.id_type for r in swapped] == ["qr_payee", "jpqr_store"]
            check = await carol.check_static_qr(GENUINE)
            assert check.confirm_merchant and not check.block and not check.degraded
            assert (await carol.check_static_qr(FORGED)).block

            filed = await carol.open_dispute("phone", PHONE, "The customer says it is new.")
            assert filed.status == "open" and filed.reports == 1
            incoming = await bob.incoming_disputes()
            assert [(d.id, d.status) for d in incoming] == [(filed.id, "open")]
            assert not incoming[0].reports[0].suspended
            answered = await bob.answer_dispute(filed.id, "uphold", "Chargeback confirmed.")
            assert answered.status == "resolved" and answered.reports == (made[0].id,)
            outgoing = await carol.outgoing_disputes()
            assert outgoing[0].answers == DisputeAnswers(uphold=1)

            await bob.withdraw(made[1].id)
            assert not (await carol.lookup(email=EMAIL))["email"].matched
            assert (await bob.me())["status"] == "active"
            assert (await bob.server_key_info())["algorithm"] == "ed25519"
            assert isinstance((await bob.network_directory()), dict)

        # Only tokens left this member, and the client closed its own httpx client.
        sent = b"\n".join(bytes(r.url.raw_path) + b"\n" + r.content for r in bob_wire.captured)
        for id_type, value in (("phone", PHONE), ("email", EMAIL)):
            assert _find(sent, _identifier_needles(id_type, value)) == []
        with pytest.raises(TransportError, match="closed"):
            await bob.ping()

    asyncio.run(scenario())


def test_the_async_client_refuses_a_tampered_answer(make_member, make_async):
    def flip(response: httpx.Response) -> httpx.Response:
        body = bytearray(response.content)
        body[-2] ^= 1
        return httpx.Response(response.status_code, headers=response.headers,
                              content=bytes(body), request=response.request)

    async def scenario() -> None:
        client, wire = make_async(make_member())
        wire.tamper = flip
        with pytest.raises(ResponseVerificationError, match="refusing the server's answer"):
            await client.lookup(phone=PHONE)
        decision = await client.check_signup(phone=PHONE)
        assert decision.degraded and decision.error.startswith("ResponseVerificationError")

    asyncio.run(scenario())


# -- against the fake CLUE on a real socket -------------------------------------------------------


@pytest.fixture
def fake():
    with FakeClue() as server:
        yield server


def test_concurrent_calls_share_kept_alive_connections(fake):
    fake.default = fake.lookups(matched=True)

    async def scenario() -> None:
        async with fake.async_client() as client:
            results = await asyncio.gather(*(client.lookup(phone=f"090-2000-{n:04d}")
                                             for n in range(40)))
            assert all(r["phone"].matched for r in results)
            opened = fake.connections
            assert opened <= 40  # at most one per call in flight
            for n in range(20):
                await client.lookup(phone=f"090-3000-{n:04d}")
            assert fake.connections == opened  # no new connection for sequential calls

    asyncio.run(scenario())
    assert len(fake.requests) == 60


@pytest.mark.parametrize("how", ["silent", "trickle"])
def test_a_silent_or_trickling_server_ends_at_the_deadline(fake, how):
    fake.default = fake.silent if how == "silent" else fake.lookups(trickle=0.1)

    async def scenario() -> tuple[float, BaseException | None]:
        async with fake.async_client(timeout=0.5) as client:
            started = time.monotonic()
            try:
                await client.lookup(phone=PHONE)
            except Exception as exc:
                return time.monotonic() - started, exc
            return time.monotonic() - started, None

    elapsed, error = asyncio.run(scenario())
    assert isinstance(error, DeadlineExceeded) and isinstance(error, TimeoutError), error
    assert 0.45 < elapsed < 0.8, elapsed


def test_the_async_decision_falls_back_within_its_budget(fake):
    fake.default = fake.lookups(trickle=0.1)

    async def scenario() -> None:
        client = fake.async_client(fallback=Fallback("block", 300))
        started = time.monotonic()
        decision = await client.check_signup(phone=PHONE)
        assert time.monotonic() - started < 0.6
        assert decision.degraded and decision.tier == "block"
        assert decision.error.startswith("DeadlineExceeded")
        qr = await client.check_static_qr(GENUINE, timeout=0.3)
        assert qr.degraded and qr.block and qr.tier == "block" and qr.payees == ()
        strict = fake.async_client(strict=True, fallback=Fallback("watch", 200))
        with pytest.raises(DeadlineExceeded):
            await strict.check_signup(phone=PHONE)
        await client.aclose()
        await strict.close()

    asyncio.run(scenario())


def test_async_retries_proxies_and_refuses_their_pages(fake):
    fake.script = [fake.unsigned(502), fake.unsigned(503)]
    fake.default = fake.lookups()

    async def scenario() -> None:
        async with fake.async_client() as client:
            assert not (await client.lookup(phone=PHONE))["phone"].matched
            assert len(fake.requests) == 3
            fake.default = fake.unsigned(504)
            with pytest.raises(GatewayError):
                await client.lookup(phone=PHONE)
            fake.default = fake.signed(200, {"reports": [{"id": "r_1"}]})
            with pytest.raises(MalformedResponseError):
                await client.register("phone", PHONE, "other")
            fake.default = fake.problem(401, "urn:clue:problem:unauthenticated",
                                        "the signature is 400 s old; at most 300 s allowed")
            with pytest.raises(RequestClockSkewError):
                await client.ping()
            assert client.clock_offset == pytest.approx(0, abs=1.5)

    asyncio.run(scenario())
