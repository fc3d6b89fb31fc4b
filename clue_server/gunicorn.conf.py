"""gunicorn settings; every value can be overridden on the command line or by env."""

import multiprocessing
import os
import shutil
import tempfile

bind = [os.environ.get("CLUE_BIND", "127.0.0.1:8080")]
# /metrics is served only on this extra listener (or to console staff); see metrics.py.
if os.environ.get("CLUE_METRICS_BIND"):
    bind.append(os.environ["CLUE_METRICS_BIND"])
workers = int(os.environ.get("CLUE_WORKERS", min(4, multiprocessing.cpu_count() * 2)))
# Threaded workers keep HTTP connections alive, so a member's SDK (or the reverse proxy)
# sends many requests over one connection. One request thread per worker: measured here,
# a second thread in the same process costs a look-up ~30 % more CPU (the threads hand the
# GIL back and forth around every database round trip) for no more throughput; scale with
# workers (processes) instead. Idle keep-alive connections wait in the worker's poller,
# not in a thread. A busy worker accepts at most one new connection per request it
# finishes (clue_server/workers.py), so connections opened at once spread over the
# workers.
worker_class = "clue_server.workers.BalancedThreadWorker"
threads = int(os.environ.get("CLUE_THREADS", "1"))
keepalive = 15
timeout = 30
graceful_timeout = 10
accesslog = "-"
# Each worker builds its own app (and database pool) after the fork.
preload_app = False
# Several CLUE servers (tests, demo, bench) may run side by side; gunicorn's
# runtime control socket has one default path, so leave it off.
control_socket_disable = True

# Prometheus multiprocess mode: each worker writes its samples under this directory and
# /metrics adds them up. Set before any worker imports prometheus_client; a directory
# we made ourselves is fresh and removed on exit.
_own_metrics_dir = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _own_metrics_dir:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="clue-metrics-")


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):  # type: ignore[no-untyped-def]
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
