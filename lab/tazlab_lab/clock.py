"""The simulated clock that drives every twin of the lab.

Simulated time is a float of seconds since the Unix epoch. It moves in two ways:

* ``await clock.advance(seconds)`` (tests): every timer due in the interval runs, in order of its
  deadline, with ``clock.now()`` set to that deadline while it runs. A timer scheduled by a
  callback inside the interval runs too. Nothing depends on wall time, so a test is deterministic.
* ``clock.start(time_scale)`` (the lab and the demo): a driver task on the running event loop moves
  simulated time along with wall time; ``time_scale`` is real seconds per simulated second
  (0.1 = ten times faster than reality, 1.0 = real time).

Callbacks may be plain functions or coroutine functions; coroutines are awaited before the next
timer runs, so controllers see a consistent order of events.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import heapq
import inspect
import itertools
import logging
from typing import Any, Callable

log = logging.getLogger(__name__)

#: The seed story's evening, so the lab's timestamps read like the incident.
DEFAULT_START = _dt.datetime(2026, 1, 25, 20, 0, 0, tzinfo=_dt.timezone.utc).timestamp()


class Timer:
    """A scheduled callback; ``cancel()`` it to stop it (periodic timers stop repeating)."""

    __slots__ = ("when", "fn", "args", "period", "cancelled", "name")

    def __init__(self, when: float, fn: Callable[..., Any], args: tuple, period: float | None, name: str):
        self.when = when
        self.fn = fn
        self.args = args
        self.period = period
        self.cancelled = False
        self.name = name

    def cancel(self) -> None:
        self.cancelled = True

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"<Timer {self.name} at {self.when} period={self.period} cancelled={self.cancelled}>"


class SimClock:
    """Simulated time with deterministic timers."""

    def __init__(self, start: float = DEFAULT_START):
        self._now = float(start)
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._lock = asyncio.Lock()
        self._driver: asyncio.Task | None = None
        self.time_scale: float | None = None
        self.errors: list[BaseException] = []

    # -- reading -----------------------------------------------------------------------------
    def now(self) -> float:
        return self._now

    def now_dt(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self._now, tz=_dt.timezone.utc)

    def now_iso(self) -> str:
        """RFC 3339 with second precision, as Kubernetes writes timestamps."""
        return self.now_dt().strftime("%Y-%m-%dT%H:%M:%SZ")

    def now_micro_iso(self) -> str:
        """RFC 3339 with microseconds, as Kubernetes writes MicroTime (leases)."""
        return self.now_dt().strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    # -- scheduling --------------------------------------------------------------------------
    def call_at(self, when: float, fn: Callable[..., Any], *args: Any, name: str = "") -> Timer:
        timer = Timer(max(float(when), self._now), fn, args, None, name or getattr(fn, "__name__", "timer"))
        heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
        return timer

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any, name: str = "") -> Timer:
        return self.call_at(self._now + max(0.0, float(delay)), fn, *args, name=name)

    def every(self, period: float, fn: Callable[..., Any], *args: Any, first: float | None = None,
              name: str = "") -> Timer:
        """Run ``fn`` every ``period`` simulated seconds, first after ``first`` (default: period)."""
        if period <= 0:
            raise ValueError("period must be positive")
        delay = period if first is None else max(0.0, float(first))
        timer = Timer(self._now + delay, fn, args, float(period), name or getattr(fn, "__name__", "timer"))
        heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
        return timer

    async def sleep(self, delay: float) -> None:
        """Sleep in simulated time (wakes when the clock reaches now + delay)."""
        fut = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not fut.done():
                fut.set_result(None)

        self.call_later(delay, wake, name="sleep")
        await fut

    def next_deadline(self) -> float | None:
        self._drop_cancelled()
        return self._heap[0][0] if self._heap else None

    # -- moving time -------------------------------------------------------------------------
    async def advance(self, seconds: float) -> None:
        """Move simulated time forward by ``seconds``, running every timer due, in order."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        await self.advance_to(self._now + seconds)

    async def advance_to(self, target: float) -> None:
        async with self._lock:
            while True:
                self._drop_cancelled()
                if not self._heap or self._heap[0][0] > target:
                    break
                when, _, timer = heapq.heappop(self._heap)
                self._now = max(self._now, when)
                if timer.period is not None:
                    timer.when = when + timer.period
                    heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
                await self._run(timer)
                # Let tasks woken by the timer (sleepers, request handlers) run at this instant.
                await asyncio.sleep(0)
            self._now = max(self._now, target)

    async def run_until(self, predicate: Callable[[], bool], timeout: float, step: float = 1.0) -> bool:
        """Advance in ``step``s until ``predicate()`` is true or ``timeout`` simulated seconds pass."""
        deadline = self._now + timeout
        while not predicate():
            if self._now >= deadline:
                return False
            await self.advance(min(step, deadline - self._now))
        return True

    async def _run(self, timer: Timer) -> None:
        try:
            result = timer.fn(*timer.args)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # a broken controller must not stop the world's clock
            log.exception("timer %s failed", timer.name)
            self.errors.append(exc)

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)

    # -- real-time driver --------------------------------------------------------------------
    def start(self, time_scale: float = 1.0, tick: float = 0.02) -> asyncio.Task:
        """Drive simulated time from wall time on the running loop (``time_scale`` real s per sim s)."""
        if time_scale <= 0:
            raise ValueError("time_scale is real seconds per simulated second and must be positive")
        if self._driver is not None:
            raise RuntimeError("clock already started")
        self.time_scale = float(time_scale)
        self._driver = asyncio.get_running_loop().create_task(self._drive(tick), name="simclock-driver")
        return self._driver

    async def stop(self) -> None:
        if self._driver is not None:
            self._driver.cancel()
            try:
                await self._driver
            except asyncio.CancelledError:
                pass
            self._driver = None

    async def _drive(self, tick: float) -> None:
        loop = asyncio.get_running_loop()
        real0, sim0 = loop.time(), self._now
        while True:
            await asyncio.sleep(tick)
            target = sim0 + (loop.time() - real0) / self.time_scale
            if target > self._now:
                await self.advance_to(target)
            else:  # someone advanced the clock by hand: keep going from there
                real0, sim0 = loop.time(), self._now
