"""Issue 5: the network key reaches every member through the server, which cannot read it;
every key rotates."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
import requests
from alembic import command
from click.testing import CliRunner
from sqlalchemy import inspect, select, text, update

import keys
from clue_client import ClueClient, keyshare
from clue_client.errors import (
    AuthenticationError,
    NotFoundError,
    ResponseVerificationError,
    ValidationError,
)
from clue_server import cli, create_app, db
from clue_server.audit.models import AuditEvent
from clue_server.keystore import (
    ensure_server_keys,
    load_server_keys,
    promote_next_signing_key,
    retire_pepper_file,
    rotate_pepper,
    stage_next_signing_key,
)
from clue_server.members import services as members
from clue_server.migrate import alembic_config
from clue_server.networkkeys import services as networkkeys
from clue_server.networkkeys.models import NetworkKeyEnvelope, NetworkKeyVersion
from clue_server.reports.models import Report
from tests.helpers import BASE_URL, Creds, WSGIAdapter


class Member:
    def __init__(self, app, name, server_keys_dir, *, hpke_at_admission=True):
        self.signing = keys.generate_signing_key()
        self.hpke = keys.generate_hpke_key()
        with db.session_scope(app) as session:
            row = members.add_member(session, name, self.signing.public_key(),
                                     hpke_public_key=self.hpke.public_key()
                                     if hpke_at_admission else None)
            self.id = row.id
        self.creds = Creds(self.id, self.signing)
        self.app = app
        self.server_keys_dir = server_keys_dir
        self.ring: keys.Keyring | None = None
        self.adapter = WSGIAdapter(app)
        self.responses: list[bytes] = []
        self.adapter.tamper = lambda response: self.responses.append(response.content)

    def client(self, **extra) -> ClueClient:
        server = load_server_keys(self.server_keys_dir)
        session = requests.Session()
        session.mount(BASE_URL, self.adapter)
        extra.setdefault("private_lookups", False)  # protocol 1 asks every key version
        return ClueClient(BASE_URL, signing_key=self.signing, server_public_key=server.public_key,
                          network_keys=self.ring, session=session, retries=0, **extra)

    def fetch(self, tmp_path, **kw) -> keyshare.FetchResult:
        directory = tmp_path / self.id
        directory.mkdir(exist_ok=True)
        result = keyshare.fetch(self.client(), self.hpke, directory, own_member_id=self.id, **kw)
        self.ring = keys.load_keyring(directory, "network")
        return result


@pytest.fixture
def trio(app, server_keys_dir):
    return [Member(app, name, server_keys_dir) for name in ("Alpha Pay", "Beta Bank", "Gamma")]


def _all_database_bytes(app) -> bytes:
    engine = app.extensions["clue_engine"]
    dump = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                for value in row:
                    dump.append(value if isinstance(value, bytes) else str(value).encode())
    return b"\n".join(dump)


def _forms(secret: bytes) -> list[bytes]:
    return [secret, secret.hex().encode(), base64.b64encode(secret),
            base64.urlsafe_b64encode(secret), base64.urlsafe_b64encode(secret).rstrip(b"=")]


def test_operator_never_sees_the_network_key(app, trio, tmp_path, server_keys_dir):
    alpha, beta, gamma = trio
    key = keys.new_symmetric_key("network", 1)
    alpha.ring = keys.Keyring([key])
    shared = keyshare.share(alpha.client(), key, alpha.signing, own_member_id=alpha.id)
    assert set(shared.shared_with) == {beta.id, gamma.id}
    for member in (beta, gamma):
        result = member.fetch(tmp_path)
        assert result.saved == (1,)
        assert member.ring.current.secret == key.secret
    # Everything the server received or sent, everything it stored, every server file.
    sent = b"".join((r.body or b"") + str(r.headers).encode() + r.url.encode()
                    for m in trio for r in m.adapter.captured)
    answered = b"".join(c for m in trio for c in m.responses)
    stored = _all_database_bytes(app)
    files = b"".join(p.read_bytes() for p in server_keys_dir.iterdir())
    for haystack in (sent, answered, stored, files):
        for form in _forms(key.secret):
            assert form not in haystack
    # ...while the envelopes are really there, as opaque bytes.
    with db.session_scope(app) as session:
        assert session.scalar(select(NetworkKeyEnvelope).limit(1)) is not None


def test_rotation_scenario(app, trio, tmp_path):
    alpha, beta, _gamma = trio
    v1 = keys.new_symmetric_key("network", 1)
    alpha.ring = keys.Keyring([v1])
    keyshare.share(alpha.client(), v1, alpha.signing, own_member_id=alpha.id)
    beta.fetch(tmp_path)
    alpha.client().register("phone", "090-1234-5678", "card_theft")
    assert beta.client().lookup(phone="09012345678")["phone"].matched

    v2 = keys.new_symmetric_key("network", 2)
    alpha.ring = keys.Keyring([v1, v2])
    keyshare.share(alpha.client(), v2, alpha.signing, own_member_id=alpha.id)
    assert beta.fetch(tmp_path).saved == (2,)
    assert beta.ring.versions == (2, 1)
    # Before re-registration, the v1 report is still found: look-ups ask under every version.
    assert beta.client().lookup(phone="090-1234-5678")["phone"].matched
    report = alpha.client().register("phone", "090-1234-5678", "card_theft")
    assert report.key_version == 2 and report.created

    with db.session_scope(app) as session:
        assert networkkeys.retire_version(session, 1, now=db.utcnow()) == 1
    # Tokens of a retired version are refused with a clear error...
    v1_only = Member.__new__(Member)
    v1_only.__dict__.update(beta.__dict__)
    v1_only.ring = keys.Keyring([v1])
    with pytest.raises(ValidationError) as refused:
        v1_only.client().lookup(phone="090-1234-5678")
    assert "retired network-key version" in refused.value.detail
    assert refused.value.problem["index"] == 0
    # ...and the v2 report still matches for members holding v2.
    beta.ring = keys.Keyring([v2])
    result = beta.client().lookup(phone="090-1234-5678")["phone"]
    assert result.matched and result.reporters == 1
    with db.session_scope(app) as session:
        assert {r.key_version for r in session.scalars(select(Report))} == {2}


def test_retiring_needs_reregistration_first(app, trio):
    alpha = trio[0]
    alpha.ring = keys.Keyring([keys.new_symmetric_key("network", 1)])
    alpha.client().register("ip", "9.9.9.10", "phishing")
    with db.session_scope(app) as session, pytest.raises(networkkeys.NetworkKeyError):
        networkkeys.retire_version(session, 1, now=db.utcnow())


def test_tampered_or_foreign_envelopes_are_refused(app, trio, tmp_path):
    alpha, beta, gamma = trio
    key = keys.new_symmetric_key("network", 1)
    keyshare.share(alpha.client(), key, alpha.signing, own_member_id=alpha.id)
    # Only trusted custodians' envelopes are accepted when the member says so.
    with pytest.raises(keyshare.ShareError, match="not one of your trusted custodians"):
        beta.fetch(tmp_path, trusted_custodians=frozenset({keys.key_id(gamma.signing
                                                                       .public_key())}))
    # An operator flipping envelope bytes is caught by the custodian's signature.
    with db.session_scope(app) as session:
        row = session.scalar(select(NetworkKeyEnvelope)
                             .where(NetworkKeyEnvelope.recipient_id == beta.id))
        row.envelope = bytes([row.envelope[0] ^ 1]) + row.envelope[1:]
    with pytest.raises(keyshare.ShareError, match="signature does not verify"):
        beta.fetch(tmp_path)
    # An envelope re-addressed to another member does not open (AAD names the recipient).
    envelope, signature = keyshare.seal(key, beta.id, beta.hpke.public_key(), alpha.signing)
    with pytest.raises(keyshare.ShareError):
        keyshare.open_envelope(1, gamma.id, envelope, signature,
                               custodian=alpha.signing.public_key(), own_key=gamma.hpke)


def test_server_refuses_envelopes_not_signed_by_the_sender(app, trio):
    alpha, beta, gamma = trio
    key = keys.new_symmetric_key("network", 1)
    envelope, signature = keyshare.seal(key, beta.id, beta.hpke.public_key(), gamma.signing)
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    with pytest.raises(ValidationError) as refused:
        alpha.client().upload_envelopes(1, [{"recipient": beta.id, "envelope": b64(envelope),
                                             "signature": b64(signature)}])
    assert refused.value.problem["field"] == "signature"


def test_member_publishes_hpke_key_later(app, server_keys_dir, tmp_path):
    alpha = Member(app, "Alpha Pay", server_keys_dir)
    late = Member(app, "Late Bank", server_keys_dir, hpke_at_admission=False)
    key = keys.new_symmetric_key("network", 1)
    assert keyshare.share(alpha.client(), key, alpha.signing,
                          own_member_id=alpha.id).shared_with == ()
    late.client().publish_hpke_key(late.hpke.public_key())
    assert late.client().me()["hpke_public_key"]
    keyshare.share(alpha.client(), key, alpha.signing, own_member_id=alpha.id)
    assert late.fetch(tmp_path).saved == (1,)


def test_member_signing_key_rotation(app, trio):
    alpha = trio[0]
    alpha.ring = keys.Keyring([keys.new_symmetric_key("network", 1)])
    old_client = alpha.client()
    new_key = keys.generate_signing_key()
    old_client.add_signing_key(new_key.public_key())
    alpha.signing = new_key
    new_client = alpha.client()
    old_id = old_client.me()["signing_keys"][0]["key_id"]
    new_client.revoke_signing_key(old_id)
    with pytest.raises(AuthenticationError):
        old_client.ping()
    assert new_client.ping()["member_id"] == alpha.id
    with pytest.raises(ValidationError, match="last active"):
        new_client.revoke_signing_key(keys.key_id(new_key.public_key()))
    # Someone else's key id is answered as absent.
    with pytest.raises(NotFoundError):
        new_client.revoke_signing_key(keys.key_id(trio[1].signing.public_key()))


def test_pepper_rotation(database_url, tmp_path):
    keys_dir = tmp_path / "server-keys"
    ensure_server_keys(keys_dir)
    app = create_app({"database_url": database_url, "server_keys_dir": keys_dir})
    alpha = Member(app, "Alpha Pay", keys_dir)
    alpha.ring = keys.Keyring([keys.new_symmetric_key("network", 1)])
    alpha.client().register("email", "a@example.com", "phishing")
    assert rotate_pepper(keys_dir) == 2
    app2 = create_app({"database_url": database_url, "server_keys_dir": keys_dir})
    alpha.app, alpha.adapter = app2, WSGIAdapter(app2)
    alpha.client().register("email", "b@example.com", "phishing")
    with db.session_scope(app2) as session:
        versions = sorted(r.pepper_version for r in session.scalars(select(Report)))
    assert versions == [1, 2]
    # Look-ups try every pepper version, and registering again finds the old row.
    assert alpha.client().lookup(email="a@example.com")["email"].matched
    assert alpha.client().register("email", "a@example.com", "phishing").created is False
    with pytest.raises(ValueError, match="newest"):
        retire_pepper_file(keys_dir, 2)
    env = {"CLUE_DATABASE_URL": database_url, "CLUE_SERVER_KEYS_DIR": str(keys_dir)}
    refused = CliRunner().invoke(cli.main, ["pepper", "retire", "1"], env=env)
    assert refused.exit_code == 1 and "1 report(s) still use pepper v1" in refused.output
    with db.session_scope(app2) as session:
        session.execute(update(Report).values(expires_at=db.utcnow() - dt.timedelta(days=1))
                        .where(Report.pepper_version == 1))
    assert CliRunner().invoke(cli.main, ["purge-expired"], env=env).exit_code == 0
    retired = CliRunner().invoke(cli.main, ["pepper", "retire", "1"], env=env)
    assert retired.exit_code == 0, retired.output
    assert load_server_keys(keys_dir).peppers.versions == (2,)
    db.dispose(app)
    db.dispose(app2)


def test_server_key_rotation(database_url, tmp_path):
    keys_dir = tmp_path / "server-keys"
    ensure_server_keys(keys_dir)
    app = create_app({"database_url": database_url, "server_keys_dir": keys_dir})
    alpha = Member(app, "Alpha Pay", keys_dir)
    current = load_server_keys(keys_dir).public_key
    staged = stage_next_signing_key(keys_dir)
    app = create_app({"database_url": database_url, "server_keys_dir": keys_dir})
    alpha.adapter = WSGIAdapter(app)
    info = alpha.client().server_key_info()
    raw = bytes.fromhex(info["next"]["public_key_raw"])
    from clue_client import protocol

    current.verify(base64.urlsafe_b64decode(info["next"]["endorsement"]),
                   protocol.endorsement_statement(raw))
    promote_next_signing_key(keys_dir, stamp="test")
    app = create_app({"database_url": database_url, "server_keys_dir": keys_dir})
    alpha.adapter = WSGIAdapter(app)
    session = requests.Session()
    session.mount(BASE_URL, alpha.adapter)
    pinned_old_only = ClueClient(BASE_URL, signing_key=alpha.signing, server_public_key=current,
                                 network_keys=None, session=session, retries=0)
    with pytest.raises(ResponseVerificationError):
        pinned_old_only.ping()
    pinned_with_next = ClueClient(BASE_URL, signing_key=alpha.signing, server_public_key=current,
                                  next_server_public_key=staged, network_keys=None,
                                  session=session, retries=0)
    assert pinned_with_next.ping()["member_id"] == alpha.id


def test_a_second_different_key_for_a_held_version_is_refused(app, trio, tmp_path):
    alpha, beta, _gamma = trio
    keyshare.share(alpha.client(), keys.new_symmetric_key("network", 1), alpha.signing,
                   own_member_id=alpha.id)
    beta.fetch(tmp_path)
    # The custodian itself shares a different v1 (a lost key re-made, or a mistake).
    keyshare.share(alpha.client(), keys.new_symmetric_key("network", 1), alpha.signing,
                   own_member_id=alpha.id)
    with pytest.raises(keyshare.ShareError, match="differs from the one in"):
        beta.fetch(tmp_path)


# -- issue 10, item 3: a version belongs to its custodian ----------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _actions(app, action):
    with db.session_scope(app) as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                 .order_by(AuditEvent.id))
        return [(e.actor, e.subject, e.details) for e in events]


def test_another_members_envelope_for_a_version_is_refused_and_audited(app, trio, tmp_path):
    alpha, beta, gamma = trio
    genuine = keys.new_symmetric_key("network", 1)
    keyshare.share(alpha.client(), genuine, alpha.signing, own_member_id=alpha.id)
    # The attack: gamma seals a key of its own making to beta as v1, correctly signed
    # by gamma, and uploads it to replace alpha's envelope.
    forged = keys.new_symmetric_key("network", 1)
    envelope, signature = keyshare.seal(forged, beta.id, beta.hpke.public_key(), gamma.signing)
    with pytest.raises(ValidationError) as refused:
        gamma.client().upload_envelopes(1, [{"recipient": beta.id, "envelope": _b64(envelope),
                                             "signature": _b64(signature)}])
    assert refused.value.status == 409
    assert refused.value.problem["type"] == "urn:clue:problem:not-custodian"
    assert refused.value.problem["custodian_member_id"] == alpha.id
    assert "clue keys network rotate" in refused.value.detail
    # Whole shares are refused the same way, and each refusal is audited.
    with pytest.raises(ValidationError, match="only that member may upload"):
        keyshare.share(gamma.client(), forged, gamma.signing, own_member_id=gamma.id)
    refusals = _actions(app, "network_key.share_refused")
    assert [(actor, subject) for actor, subject, _ in refusals] == [(gamma.id, "v1")] * 2
    assert refusals[0][2]["custodian"] == alpha.id
    # Nothing of gamma's was stored; beta gets alpha's key.
    with db.session_scope(app) as session:
        senders = set(session.scalars(select(NetworkKeyEnvelope.sender_key_id)))
    assert senders == {keys.key_id(alpha.signing.public_key())}
    assert beta.fetch(tmp_path).saved == (1,)
    assert beta.ring.current.secret == genuine.secret
    # Gamma may still share a key of its own as a new version, and becomes its custodian.
    keyshare.share(gamma.client(), keys.new_symmetric_key("network", 2), gamma.signing,
                   own_member_id=gamma.id)
    with db.session_scope(app) as session:
        assert {v["version"]: v["custodian"] for v in networkkeys.list_versions(session)} == {
            1: alpha.id, 2: gamma.id}


def test_a_fetched_envelope_not_signed_by_the_custodian_is_refused_by_the_sdk(app, trio,
                                                                              tmp_path):
    alpha, beta, gamma = trio
    keyshare.share(alpha.client(), keys.new_symmetric_key("network", 1), alpha.signing,
                   own_member_id=alpha.id)
    # An envelope the server should never have kept (stored before custodians were
    # enforced, or by a server that does not check): sealed and signed by gamma.
    forged = keys.new_symmetric_key("network", 1)
    envelope, signature = keyshare.seal(forged, beta.id, beta.hpke.public_key(), gamma.signing)
    with db.session_scope(app) as session:
        row = session.scalar(select(NetworkKeyEnvelope)
                             .where(NetworkKeyEnvelope.recipient_id == beta.id))
        row.sender_key_id = keys.key_id(gamma.signing.public_key())
        row.envelope, row.signature = envelope, signature
    with pytest.raises(keyshare.ShareError, match="not by the version's custodian"):
        beta.fetch(tmp_path)
    assert not (tmp_path / beta.id / "network-v1.key").exists()


def test_a_new_version_is_claimed_once_and_a_version_without_custodian_by_its_next_upload(
        app, trio):
    alpha, _beta, gamma = trio
    with db.session_scope(app) as session:
        assert networkkeys._claim_version(session, 7, alpha.id) == alpha.id
        # Someone else's claim of the same version (a race lost) finds alpha's.
        assert networkkeys._claim_version(session, 7, gamma.id) == alpha.id
        session.add(NetworkKeyVersion(version=8, status="active"))  # as before migration 0006
        session.flush()
        assert networkkeys._claim_version(session, 8, gamma.id) == gamma.id
        assert networkkeys._claim_version(session, 8, alpha.id) == gamma.id


def test_share_reports_each_recipients_hpke_fingerprint_computed_locally(app, trio,
                                                                        monkeypatch):
    alpha, beta, gamma = trio
    client = alpha.client()
    key = keys.new_symmetric_key("network", 1)
    shared = keyshare.share(client, key, alpha.signing, own_member_id=alpha.id)
    assert dict(shared.fingerprints) == {m.id: keys.fingerprint(m.hpke.public_key())
                                         for m in (beta, gamma)}
    # A directory whose stated fingerprint does not match the key it carries is refused.
    real = client.network_directory

    def lying():
        directory = real()
        directory["recipients"][-1]["fingerprint"] = "SHA256:" + "A" * 43
        return directory

    monkeypatch.setattr(client, "network_directory", lying)
    with pytest.raises(keyshare.ShareError, match="refusing to share"):
        keyshare.share(client, keys.new_symmetric_key("network", 2), alpha.signing,
                       own_member_id=alpha.id)


def test_migration_names_the_signer_of_the_oldest_envelope_as_custodian(app, database_url,
                                                                        trio):
    alpha, beta, gamma = trio
    engine = app.extensions["clue_engine"]
    engine.dispose()
    command.downgrade(alembic_config(database_url), "0004")
    try:
        alpha_key = keys.key_id(alpha.signing.public_key())
        gamma_key = keys.key_id(gamma.signing.public_key())
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO network_key_versions (version, status, created_at) "
                              "VALUES (1, 'active', :t), (2, 'active', :t)"), {"t": db.utcnow()})
            rows = [(1, gamma.id, alpha_key, "2024-01-01 00:00:00"),  # alpha created v1 ...
                    (1, beta.id, gamma_key, "2024-01-02 00:00:00")]   # ... gamma overwrote one
            for version, recipient, sender, at in rows:
                conn.execute(text(
                    "INSERT INTO network_key_envelopes (version, recipient_id, sender_key_id, "
                    "envelope, signature, created_at) VALUES (:v, :r, :s, :e, :g, :t)"),
                    {"v": version, "r": recipient, "s": sender, "e": b"x", "g": b"y" * 64,
                     "t": dt.datetime.fromisoformat(at).replace(tzinfo=dt.UTC)})
    finally:
        command.upgrade(alembic_config(database_url), "head")
    with db.session_scope(app) as session:
        custodians = {v["version"]: v["custodian"] for v in networkkeys.list_versions(session)}
    assert custodians == {1: alpha.id, 2: None}


def test_server_key_commands_refuse_out_of_order_steps(tmp_path):
    env = {"CLUE_SERVER_KEYS_DIR": str(tmp_path / "keys"),
           "CLUE_DATABASE_URL": f"sqlite:///{tmp_path / 'clue.db'}"}
    ensure_server_keys(tmp_path / "keys")
    promote = CliRunner().invoke(cli.main, ["server-key", "promote"], env=env)
    assert promote.exit_code == 1 and "server-key rotate` first" in promote.output
    assert CliRunner().invoke(cli.main, ["server-key", "rotate"], env=env).exit_code == 0
    again = CliRunner().invoke(cli.main, ["server-key", "rotate"], env=env)
    assert again.exit_code == 1 and "promote it first" in again.output
    shown = CliRunner().invoke(cli.main, ["server-key", "show"], env=env)
    assert shown.output.count("SHA256:") == 2
