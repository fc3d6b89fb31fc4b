"""A member set up through ``clue keys init`` whose CLI talks to the app in-process.

Fixtures for the ``clue`` command-line tests (issue 12): the member's config and keys
are real files in a temporary directory, the council admits it through the service
layer, and its client reaches the app through the WSGI adapter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

import keys
from clue_client import ClueClient
from clue_client import cli as member_cli
from clue_server import db
from clue_server.members import services as members
from tests.helpers import BASE_URL, WSGIAdapter


@dataclass
class Member:
    root: Path
    config: Path
    keys_dir: Path
    adapter: WSGIAdapter
    member_id: str

    def run(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(member_cli.main, ["--config", str(self.config), *args],
                                  input=input, catch_exceptions=False)

    def client(self) -> ClueClient:
        session = requests.Session()
        session.mount(BASE_URL, self.adapter)
        return ClueClient.from_config(self.config, session=session, retries=0)

    def posts(self, path: str = "/v1/reports") -> int:
        return sum(1 for r in self.adapter.captured if r.method == "POST"
                   and r.path_url == path)


class _Answer:
    """What ``requests.get`` returns, from Flask's test client."""

    def __init__(self, response: Any) -> None:
        self.status_code = response.status_code
        self._data = response.get_data()

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise requests.HTTPError(f"{self.status_code}")

    def json(self) -> Any:
        return json.loads(self._data)


@pytest.fixture(name="server_get")
def server_get_fixture(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``clue keys init`` checks the key against GET /v1/server-key: serve it from the app."""
    test_client = app.test_client()

    def get(url: str, timeout: float) -> _Answer:
        if not url.startswith(BASE_URL):
            raise requests.ConnectionError(f"cannot reach {url}")
        return _Answer(test_client.get(url[len(BASE_URL):], base_url=BASE_URL))

    monkeypatch.setattr(member_cli.requests, "get", get)


def set_up_member(app: Any, root: Path, server_keys_dir: Path, name: str = "Import Pay",
                  admit: bool = True, network_key: keys.SymmetricKey | None = None) -> Member:
    config, keys_dir = root / "clue.json", root / "keys"
    init = CliRunner().invoke(member_cli.main, [
        "--config", str(config), "keys", "init", "--server", BASE_URL,
        "--server-key", str(server_keys_dir / "server-signing.pub"),
        "--keys-dir", str(keys_dir)], catch_exceptions=False)
    assert init.exit_code == 0, init.output
    member_id = ""
    if admit:
        with db.session_scope(app) as session:
            member_id = members.add_member(
                session, name, keys.load_public_key(keys_dir / "member-signing.pub"),
                hpke_public_key=keys.load_public_key(keys_dir / "member-hpke.pub")).id
    keys.save_symmetric_key(keys.keyring_path(keys_dir, "network", 1),
                            network_key or keys.new_symmetric_key("network", 1))
    return Member(root, config, keys_dir, WSGIAdapter(app), member_id)


@pytest.fixture(name="member")
def member_fixture(app: Any, tmp_path: Path, server_keys_dir: Path, server_get: None,
                   monkeypatch: pytest.MonkeyPatch) -> Member:
    m = set_up_member(app, tmp_path / "m", server_keys_dir)
    monkeypatch.setattr(member_cli, "_client", lambda ctx: m.client())
    return m


