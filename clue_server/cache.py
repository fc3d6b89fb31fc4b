"""Values read from the database at most once a second per worker.

The request path must not read council settings on every request; a change made in
the console or the CLI reaches every worker within ``ttl`` seconds (one second by
default, as docs/runbook.md promises for revocations and settings alike).
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import Session

T = TypeVar("T")


class Refreshed(Generic[T]):
    """``value = cached()``: ``load()``'s result, reloaded when older than ``ttl`` seconds."""

    def __init__(self, load: Callable[[], T], ttl: float = 1.0) -> None:
        self.load = load
        self.ttl = ttl
        self._value: tuple[float, T] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        held = self._value
        now = time.monotonic()
        if held is not None and now - held[0] < self.ttl:
            return held[1]
        with self._lock:
            held = self._value
            if held is None or time.monotonic() - held[0] >= self.ttl:
                held = (time.monotonic(), self.load())
                self._value = held
        return held[1]

    def invalidate(self) -> None:
        self._value = None


# -- changes made in this process apply at once --------------------------------------------

_watchers: list[tuple[tuple[type, ...], weakref.ref[Any]]] = []


def invalidate_on_change(cache: Any, *models: type) -> None:
    """Drop ``cache`` (anything with ``invalidate()``) whenever a session of this process
    commits a change to a row of one of ``models``; other processes wait out the TTL."""
    _watchers.append((models, weakref.ref(cache)))


@event.listens_for(Session, "after_flush")
def _note_changes(session: Session, _context: Any) -> None:
    changed = session.info.setdefault("clue_changed_models", set())
    for obj in (*session.new, *session.dirty, *session.deleted):
        changed.add(type(obj))


@event.listens_for(Session, "after_commit")
def _apply_changes(session: Session) -> None:
    changed = session.info.pop("clue_changed_models", None)
    if not changed:
        return
    for models, ref in list(_watchers):
        cache = ref()
        if cache is None:
            _watchers.remove((models, ref))
        elif any(issubclass(c, models) for c in changed):
            cache.invalidate()


@event.listens_for(Session, "after_rollback")
def _forget_changes(session: Session) -> None:
    session.info.pop("clue_changed_models", None)
