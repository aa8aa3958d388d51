"""The store's watch side: subscribers, watchers and the watch history.

Every write of the store ends in ``_emit``: the event goes into the history (``events_since``, what
a watch with a resourceVersion resumes from), then to every watcher (``add_watcher``: the API
server's watches, with the old version for selector transitions) and every subscriber
(``subscribe``: the controllers' informer), synchronously, on the writing thread, inside the
store's transaction.

``WatchHistory`` is a mixin of ``Store`` (``store.py``); it keeps its own state only
(``_history*``, ``_compacted_rv``, ``_watchers``, ``_subscribers``) and reads ``_rv`` and
``transaction()`` of the store.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from typing import Any, Callable

from .errors import Expired, TooLargeResourceVersion
from .objects import Entry

log = logging.getLogger(__name__)

__all__ = ["WatchEvent", "Watcher", "WatchHistory"]


@dataclass(slots=True)
class WatchEvent:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    res: str
    entry: Entry
    old: Entry | None
    t: float = 0.0  # when it was written (history_clock, wall time by default)


class Watcher:
    """What ``add_watcher`` returns: ``cancel()`` stops the calls."""

    __slots__ = ("fn", "store", "active")

    def __init__(self, store: "WatchHistory", fn: Callable[[WatchEvent], None]):
        self.store, self.fn, self.active = store, fn, True

    def cancel(self) -> None:
        if self.active:
            self.active = False
            with self.store.transaction():
                try:
                    self.store._watchers.remove(self)
                except ValueError:
                    pass


class WatchHistory:
    """Subscribers, watchers and the history of events (a mixin of ``Store``)."""

    _rv: int
    errors: list[BaseException]

    def transaction(self) -> Any:  # pragma: no cover - Store provides it
        raise NotImplementedError

    def _init_watch(self, history: int, history_seconds: float, history_clock: Callable[[], float]) -> None:
        self._history: collections.deque[WatchEvent] = collections.deque()
        self._history_max = history
        self._history_seconds = history_seconds
        self._history_clock = history_clock
        self._compacted_rv = 0  # events with rv <= this are gone from the history
        self._subscribers: list[Callable[[str, str, dict], Any]] = []
        self._watchers: list[Watcher] = []

    @property
    def compacted_resource_version(self) -> int:
        """Events with a resourceVersion up to this one are gone from the history (compacted)."""
        return self._compacted_rv

    def subscribe(self, fn: Callable[[str, str, dict], Any]) -> Callable[[], None]:
        """fn(event_type, res, obj) after every write; returns a function that unsubscribes."""
        with self.transaction():
            self._subscribers.append(fn)

        def unsubscribe() -> None:
            with self.transaction():
                if fn in self._subscribers:
                    self._subscribers.remove(fn)
        return unsubscribe

    def add_watcher(self, fn: Callable[[WatchEvent], None]) -> Watcher:
        """fn(WatchEvent) after every write (with the old version, for selector transitions)."""
        w = Watcher(self, fn)
        with self.transaction():
            self._watchers.append(w)
        return w

    def events_since(self, rv: int, res: str | None = None) -> list[WatchEvent]:
        """Events with resourceVersion > rv; Expired (410) when the history no longer reaches back."""
        with self.transaction():
            if rv < self._compacted_rv:
                raise Expired(f"too old resource version: {rv} ({self._compacted_rv + 1})")
            if rv > self._rv:
                raise TooLargeResourceVersion(rv, self._rv)
            out = []
            for ev in reversed(self._history):
                if ev.rv <= rv:
                    break
                if res is None or ev.res == res:
                    out.append(ev)
            out.reverse()
            return out

    def _emit(self, etype: str, res: str, entry: Entry, old: Entry | None) -> None:
        now = self._history_clock()
        ev = WatchEvent(self._rv, etype, res, entry, old, now)
        self._history.append(ev)
        hist, horizon = self._history, now - self._history_seconds
        while len(hist) > self._history_max or (len(hist) > 1 and hist[0].t < horizon):
            dropped = hist.popleft()
            self._compacted_rv = dropped.rv
        for w in list(self._watchers):
            if w.active:
                try:
                    w.fn(ev)
                except Exception as exc:  # a broken watcher must not break the write
                    log.exception("watcher failed")
                    self.errors.append(exc)
        for fn in list(self._subscribers):
            try:
                fn(etype, res, entry.obj)
            except Exception as exc:
                log.exception("store subscriber failed")
                self.errors.append(exc)

