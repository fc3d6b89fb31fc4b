"""The gunicorn entry point: each worker freezes what it holds after building the app, so
the collector's full collections stop walking ~110,000 long-lived objects (a pause of
95-120 ms on the development machine, which was a look-up's p99 under load)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clue_server.migrate import upgrade

_PROBE = """
import gc
import clue_server.wsgi as entry
print(gc.get_freeze_count(), entry.app.test_client().get("/v1/server-key").status_code)
"""


def test_a_worker_freezes_the_app_it_built_and_the_app_still_answers(
        tmp_path: Path, server_keys_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'clue.db'}"
    upgrade(url)
    env = {**os.environ, "CLUE_DATABASE_URL": url, "CLUE_SERVER_KEYS_DIR": str(server_keys_dir),
           "CLUE_REDIS_URL": ""}
    result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                            env=env, cwd=Path(__file__).resolve().parents[2], timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    frozen, status = (int(n) for n in result.stdout.split()[-2:])
    # The app, its modules and SQLAlchemy's metadata: tens of thousands of objects.
    assert frozen > 20_000, result.stdout
    assert status == 200  # frozen objects are live objects all the same
