"""Start a real gunicorn serving CLUE on a free local port (demo, benchmarks, e2e tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import requests

GUNICORN_CONF = Path(__file__).with_name("gunicorn.conf.py")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Gunicorn:
    """``with Gunicorn(env) as server: requests.get(server.url + "/v1/server-key")``

    ``app`` is another WSGI app to serve under CLUE's gunicorn settings (tests of the
    worker class); ``ready_path`` is what answers once it is up."""

    def __init__(self, env: Mapping[str, str], *, workers: int = 2, port: int | None = None,
                 log: Path | None = None, app: str = "clue_server.wsgi:app",
                 ready_path: str = "/v1/server-key") -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env, "CLUE_BIND": f"127.0.0.1:{self.port}",
                    "CLUE_WORKERS": str(workers)}
        self.log = log
        self.app, self.ready_path = app, ready_path
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Gunicorn:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        out = self.log.open("ab") if self.log else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [str(gunicorn), "-c", str(GUNICORN_CONF), "--access-logfile", "-" if self.log else
             "/dev/null", self.app],
            env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}"
                                   + (f"; see {self.log}" if self.log else ""))
            try:
                requests.get(self.url + self.ready_path, timeout=5)
                return self
            except requests.RequestException:
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError("gunicorn did not answer within 30 s")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
