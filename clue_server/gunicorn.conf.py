"""gunicorn settings; every value can be overridden on the command line or by env."""

import multiprocessing
import os

bind = os.environ.get("CLUE_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("CLUE_WORKERS", min(4, multiprocessing.cpu_count() * 2)))
worker_class = "sync"
timeout = 30
graceful_timeout = 10
accesslog = "-"
# Each worker builds its own app (and database pool) after the fork.
preload_app = False
# Several CLUE servers (tests, demo, bench) may run side by side; gunicorn's
# runtime control socket has one default path, so leave it off.
control_socket_disable = True
