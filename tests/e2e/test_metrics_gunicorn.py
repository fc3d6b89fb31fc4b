"""``/metrics`` under real gunicorn (2 workers): one extra listener from CLUE_METRICS_BIND
serves the summed samples of every worker; the API listener answers 404."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from clue_server.devserver import Gunicorn, free_port


def _requests_to(text: str, route: str) -> float:
    return sum(s.value for family in text_string_to_metric_families(text)
               for s in family.samples
               if s.name == "clue_http_requests_total" and s.labels.get("route") == route
               and s.labels.get("status") == "200")


def test_metrics_listener_serves_the_sum_of_every_worker(tmp_path: Path, sqlite_template: Path,
                                                        server_keys_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch):
    database = tmp_path / "clue.db"
    shutil.copy(sqlite_template, database)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    metrics_port = free_port()
    env = {"CLUE_DATABASE_URL": f"sqlite:///{database}",
           "CLUE_SERVER_KEYS_DIR": str(server_keys_dir), "CLUE_REDIS_URL": "",
           "CLUE_METRICS_BIND": f"127.0.0.1:{metrics_port}"}
    with Gunicorn(env, workers=2, log=tmp_path / "gunicorn.log") as server:
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        before = _requests_to(requests.get(metrics_url, timeout=5).text, "/v1/server-key")
        # 40 requests on fresh connections reach both workers; every scrape must add
        # them up, whichever worker answers it.
        for _ in range(40):
            assert requests.get(server.url + "/v1/server-key", timeout=5).status_code == 200
        scrapes = [requests.get(metrics_url, timeout=5) for _ in range(4)]
        refused = requests.get(server.url + "/metrics", timeout=5)

    assert before >= 1  # the readiness probe
    assert all(s.status_code == 200 for s in scrapes)
    assert {_requests_to(s.text, "/v1/server-key") - before for s in scrapes} == {40.0}
    assert refused.status_code == 404
    assert refused.headers["Content-Type"] == "application/problem+json"
