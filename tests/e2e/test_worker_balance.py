"""CLUE's gunicorn worker class (clue_server/workers.py) against real gunicorn: a burst
of keep-alive connections spreads over the workers, and none waits long in the backlog.

Plain ``gthread`` lets one worker accept every connection of a burst while the other
idles; accepting only when idle starves the backlog. Both are what this test catches.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from clue_server.devserver import Gunicorn

pytestmark = pytest.mark.e2e

CONNECTIONS = 12
ROUNDS = 5


def _answer(sock: socket.socket, buffer: bytearray) -> bytes:
    """One HTTP/1.1 answer's body (Content-Length framed) from a kept-alive socket."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(4096)
        assert chunk, "the server closed a kept-alive connection"
        buffer += chunk
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(rest) < length:
        chunk = sock.recv(4096)
        assert chunk
        rest += chunk
    buffer[:] = rest[length:]
    return rest[:length]


def test_a_burst_of_connections_spreads_over_the_workers(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    with Gunicorn({"PYTHONPATH": str(root), "CLUE_THREADS": "1"}, workers=2,
                  log=tmp_path / "gunicorn.log", app="tests.e2e.pid_app:app",
                  ready_path="/") as server:
        # Every connection is open before any is answered: a burst, as a proxy opens them.
        sockets = [socket.create_connection(("127.0.0.1", server.port), timeout=20)
                   for _ in range(CONNECTIONS)]
        pids: dict[int, list[int]] = {}
        first_answer: dict[int, float] = {}
        start = time.monotonic()
        gate = threading.Barrier(CONNECTIONS)

        def talk(index: int) -> None:
            sock, buffer = sockets[index], bytearray()
            gate.wait()
            for _ in range(ROUNDS):
                sock.sendall(b"GET /pid HTTP/1.1\r\nHost: clue\r\n\r\n")
                pids.setdefault(index, []).append(int(_answer(sock, buffer)))
                first_answer.setdefault(index, time.monotonic() - start)

        threads = [threading.Thread(target=talk, args=(i,)) for i in range(CONNECTIONS)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        finally:
            for sock in sockets:
                sock.close()

    assert all(len(pids.get(i, [])) == ROUNDS for i in range(CONNECTIONS)), pids
    # Kept alive: each connection stays with the worker that accepted it.
    assert all(len(set(served)) == 1 for served in pids.values()), pids
    per_worker = Counter(served[0] for served in pids.values())
    assert len(per_worker) == 2, per_worker
    assert min(per_worker.values()) >= CONNECTIONS // 4, per_worker
    # Nobody waited in the backlog while others were served round after round: 12
    # connections x 30 ms over 2 workers is 0.18 s a round; starving took seconds.
    assert max(first_answer.values()) < 1.5, first_answer
