"""A fake monotonic clock for the tests (no sleeping), shared by both test trees (their conftests put this folder
on sys.path).

The code under test takes a ``clock`` (called for the time) and a ``sleep``; give it the clock and its ``sleep``.
"""

from __future__ import annotations


class FakeClock(object):
    """Calling it reads the time (``now``); ``sleep()`` advances it and records the sleep in ``sleeps``."""

    def __init__(self, now=0.0):
        self.now = now
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds):
        """The same sleep, awaitable (for coroutines such as retry.wait_until_async)."""
        self.sleep(seconds)
