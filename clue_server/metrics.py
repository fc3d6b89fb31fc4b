"""``/metrics`` in the Prometheus text format.

Under gunicorn every worker writes its samples to ``PROMETHEUS_MULTIPROC_DIR``
(set by ``gunicorn.conf.py``) and ``/metrics`` adds them up, whichever worker
answers. Routes are labelled by their URL rule (``/v1/reports/<report_id>``), never
the raw path, so a scan of random paths cannot blow up the label set.

Who may read it: a request that came in on the listener ``CLUE_METRICS_BIND``
(gunicorn binds it as an extra address), or a signed-in console staff user (a live
server-side console session: a signed-out or removed user's cookie does not do). Anyone
else gets the same 404 as an unknown path.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Request, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from werkzeug.exceptions import NotFound

PATH = "/metrics"
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104 - compared, not bound

REQUESTS = Counter("clue_http_requests", "HTTP requests answered",
                   ["route", "method", "status"])
LATENCY = Histogram("clue_http_request_duration_seconds", "Time to answer an HTTP request",
                    ["route", "method", "status"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
LOOKUPS = Counter("clue_lookups", "Identifiers looked up", ["type"])
HITS = Counter("clue_lookup_hits", "Identifiers looked up that matched a report", ["type"])
REGISTRATIONS = Counter("clue_registrations", "Reports created", ["type"])
QUOTA_REJECTIONS = Counter("clue_quota_rejections", "Requests refused for a daily quota",
                           ["quota"])
QUOTA_REJECTED_ITEMS = Counter("clue_quota_rejected_items",
                               "Items in requests refused for a daily quota", ["quota"])


def count_lookups(per_type: Mapping[str, tuple[int, int]]) -> None:
    """``{id_type: (looked_up, matched)}``."""
    for id_type, (looked_up, matched) in per_type.items():
        LOOKUPS.labels(id_type).inc(looked_up)
        if matched:
            HITS.labels(id_type).inc(matched)


def count_registrations(per_type: Mapping[str, int]) -> None:
    for id_type, created in per_type.items():
        REGISTRATIONS.labels(id_type).inc(created)


def count_quota_rejection(quota: str, items: int) -> None:
    QUOTA_REJECTIONS.labels(quota).inc()
    QUOTA_REJECTED_ITEMS.labels(quota).inc(items)


def init_app(app: Flask) -> None:
    app.add_url_rule(PATH, "metrics", _serve)

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None and request.endpoint != "metrics":
            route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
            count, latency = _series(route, request.method, response.status_code)
            count.inc()
            latency.observe(time.perf_counter() - started)
        return response


@functools.lru_cache(maxsize=1024)
def _series(route: str, method: str, status: int) -> tuple[Any, Any]:
    """The request counter's and the latency histogram's series for these labels, looked
    up once (``labels()`` costs a lock and a dict per call). The labels are bounded:
    routes are URL rules, methods and statuses few."""
    labels = (route, method, str(status))
    return REQUESTS.labels(*labels), LATENCY.labels(*labels)


def _serve() -> Response:
    if not (on_metrics_listener(request, current_app.extensions["clue_settings"].metrics_bind)
            or _console_staff()):
        raise NotFound()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _console_staff() -> bool:
    from clue_server.console.sessions import staff_of_request

    return staff_of_request() is not None


def on_metrics_listener(req: Request, bind: str | None) -> bool:
    """Did this request come in on the ``CLUE_METRICS_BIND`` address (``host:port``)?

    The local address of gunicorn's socket is what counts (a client cannot forge
    it); other servers tell it in ``SERVER_NAME``/``SERVER_PORT``. A wildcard host
    (``0.0.0.0``, ``::``) matches any local address on that port.
    """
    if not bind:
        return False
    want_host, want_port = split_bind(bind)
    sock = req.environ.get("gunicorn.socket")
    if sock is not None:
        try:
            local = sock.getsockname()
        except OSError:
            return False
        if not isinstance(local, tuple):  # a unix socket
            return False
        host, port = str(local[0]), int(local[1])
    else:
        host = str(req.environ.get("SERVER_NAME", ""))
        try:
            port = int(req.environ.get("SERVER_PORT", ""))
        except ValueError:
            return False
    return port == want_port and (want_host in _WILDCARD_HOSTS or host == want_host)


def split_bind(bind: str) -> tuple[str, int]:
    """``"127.0.0.1:9100"`` → ``("127.0.0.1", 9100)``; ``"[::1]:9100"`` → ``("::1", 9100)``."""
    host, _, port = bind.strip().rpartition(":")
    if not port.isdigit():
        raise ValueError(f"CLUE_METRICS_BIND must be host:port, not {bind!r}")
    return host.strip("[]"), int(port)
