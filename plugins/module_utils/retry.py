# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded retries with exponential backoff, jitter and an overall deadline; and every wait.

This is the one place for both: a new retry or wait uses what is here, never a hand-rolled
``while ...: sleep(...)`` loop. Generic on purpose: the Proxmox, Kubernetes and Talos helpers all use it. Nothing here knows about
any API; the caller says which errors are worth another try with a predicate.

    policy = RetryPolicy(attempts=5, base_delay=0.5, max_delay=8, deadline=30)
    value = retry_call(lambda: client.get('/version'), is_transient=lambda exc: isinstance(exc, IOError),
                       policy=policy)

Rules:

* A call is made at most ``policy.attempts`` times, and no new attempt starts once ``policy.deadline``
  seconds (monotonic clock) have passed since the first one. A sleep is cut short so it never runs past
  the deadline; if no time is left the last error is raised.
* Only errors for which ``is_transient(exc)`` is true are retried; anything else propagates at once,
  unchanged. A domain outcome (``outcomes.Outcome``: a verification or rollout that ran out of time) is
  never retried, whatever the predicate says. When retries are exhausted the *last* error is raised
  unchanged as well, so callers keep their own error types; ``RetryState`` (passed to ``on_retry``) tells
  how many attempts were made.
* The delay before retry ``n`` (1-based) is ``min(max_delay, base_delay * factor ** (n - 1))``, then
  reduced by a random share of up to ``jitter`` (0 = no jitter, 1 = "full jitter" between 0 and the
  delay), so many clients that fail together do not retry together.

* ``retry_after(exc)`` (optional) gives the seconds the server asked to wait (an HTTP ``Retry-After``);
  the sleep is then at least that long. When that wait would run past the deadline the error is raised
  at once: retrying earlier than the server asked only adds load where it is already overloaded.
* A retry loop that cannot be a ``retry_call`` (a coroutine, failover across endpoints per attempt)
  still takes its delays from ``backoff_delay(n, policy)``.

Waiting (polling) goes through here as well, one rule for every wait in the collection:

* ``wait_until(probe, condition, timeout, ...)``: call a probe until a condition holds or a timeout
  passes, with the same transient-error handling (a transient error counts as "not yet"). Raises
  ``WaitTimeout`` carrying the last value and the last error; callers turn it into their own error.
* ``wait_until_async(...)``: the same for coroutines (``await probe()``, ``await sleep(s)``; the default
  sleep is ``asyncio.sleep``, the default clock the running loop's).
* ``Pace``: the pacing rule itself, for a loop that does more per round than probe and condition
  (stall detection, events, writes between rounds, several exits). The first pause is ``interval``,
  each next one ``factor`` times longer up to ``max_interval`` (default: ``interval``, a fixed pace);
  a pause never runs past the deadline (``timeout`` seconds from the start, or an absolute
  ``deadline`` on the clock's scale). ``pace.expired()`` / ``pace.left()`` / ``pace.elapsed()`` tell
  where the wait stands, ``pace.sleep()`` takes the next pause (``pace.delay()`` only computes it, for
  an awaitable sleep). ``wait_until`` and ``wait_until_async`` are a Pace and a probe.

    pace = Pace(0.25, max_interval=2, timeout=300, sleep=sleep, clock=clock)
    while not done():
        if pace.expired():
            raise MyTimeout('not done within 300s')
        pace.sleep()

All of them take ``sleep`` and ``clock`` arguments so tests can run them without waiting.
"""

from __future__ import annotations

import math
import random
import time

from ansible_collections.tazlab.resilience.plugins.module_utils.outcomes import is_outcome

__all__ = ['Pace', 'RetryPolicy', 'RetryState', 'WaitTimeout', 'backoff_delay', 'retry_call', 'wait_until',
           'wait_until_async']


class RetryPolicy(object):
    """How often and how long to retry.

    attempts: most calls in total (>= 1). base_delay: seconds before the first retry. factor: growth
    per retry. max_delay: cap for one sleep. jitter: 0..1, the largest share of a delay taken off at
    random. deadline: seconds from the first attempt after which no new attempt starts (None: none).
    """

    __slots__ = ('attempts', 'base_delay', 'factor', 'max_delay', 'jitter', 'deadline')

    def __init__(self, attempts=4, base_delay=0.5, factor=2.0, max_delay=8.0, jitter=0.5, deadline=None):
        if attempts < 1:
            raise ValueError('attempts must be at least 1')
        if base_delay < 0 or max_delay < 0 or factor < 1:
            raise ValueError('delays must be >= 0 and factor >= 1')
        if not 0 <= jitter <= 1:
            raise ValueError('jitter must be between 0 and 1')
        if deadline is not None and deadline < 0:
            raise ValueError('deadline must be >= 0')
        self.attempts = int(attempts)
        self.base_delay = float(base_delay)
        self.factor = float(factor)
        self.max_delay = float(max_delay)
        self.jitter = float(jitter)
        self.deadline = None if deadline is None else float(deadline)

    def replace(self, **changes):
        """A copy with some fields changed."""
        values = dict((name, getattr(self, name)) for name in self.__slots__)
        values.update(changes)
        return RetryPolicy(**values)

    def __repr__(self):
        return 'RetryPolicy({0})'.format(', '.join('{0}={1!r}'.format(n, getattr(self, n)) for n in self.__slots__))


class RetryState(object):
    """What on_retry(state) sees before each sleep: attempt (1-based) that failed, error, delay, elapsed."""

    __slots__ = ('attempt', 'error', 'delay', 'elapsed')

    def __init__(self, attempt, error, delay, elapsed):
        self.attempt = attempt
        self.error = error
        self.delay = delay
        self.elapsed = elapsed


class WaitTimeout(Exception):
    """wait_until gave up: the condition did not hold in time. last is the probe's last value (or None)."""

    def __init__(self, message, last=None, elapsed=0.0, last_error=None):
        super(WaitTimeout, self).__init__(message)
        self.last = last
        self.elapsed = elapsed
        self.last_error = last_error


def backoff_delay(retry, policy, rng=None):
    """Seconds to sleep before retry number `retry` (1-based), jitter applied."""
    delay = min(policy.max_delay, policy.base_delay * policy.factor ** (retry - 1))
    if policy.jitter and delay:
        delay -= delay * policy.jitter * (rng or random).random()
    return delay


def retry_call(func, is_transient, policy=None, on_retry=None, sleep=time.sleep, clock=time.monotonic, rng=None,
               retry_after=None):
    """Call func() until it returns, retrying errors is_transient(exc) accepts, within policy's bounds.

    Returns func's value. Raises a non-transient error at once, or the last transient one when the
    attempts or the deadline are used up.
    """
    policy = policy or RetryPolicy()
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return func()
        except Exception as exc:  # noqa: BLE001 - the predicate decides
            if is_outcome(exc) or not is_transient(exc) or attempt >= policy.attempts:
                raise
            delay = backoff_delay(attempt, policy, rng)
            asked = retry_after(exc) if retry_after is not None else None
            if asked is not None and asked > delay:
                delay = float(asked)
            elapsed = clock() - start
            if policy.deadline is not None:
                left = policy.deadline - elapsed
                if left <= 0 or (asked is not None and asked > left):
                    raise
                delay = min(delay, left)
            if on_retry is not None:
                on_retry(RetryState(attempt, exc, delay, elapsed))
            sleep(delay)


class Pace(object):
    """The pace of a wait: pauses of ``interval`` seconds, each ``factor`` times the one before up to
    ``max_interval`` (default: ``interval``, a fixed pace), none running past the deadline.

    The deadline is ``timeout`` seconds after the Pace was made, or ``deadline`` (an absolute time on
    ``clock``'s scale); neither: no deadline. ``sleep(at_most=None, at_least=0)`` takes the next pause
    (``at_most`` shortens this one, ``at_least`` is a floor; the deadline cut comes last) and returns
    the seconds slept; ``delay(...)`` computes that pause and advances the pace without sleeping (for
    an awaitable sleep); ``reset()`` starts the growth again. When no time is left the pause is 0 and nothing
    sleeps.
    """

    __slots__ = ('start', 'deadline', 'interval', 'first', 'max_interval', 'factor', 'pauses', '_clock', '_sleep')

    def __init__(self, interval=1.0, max_interval=None, factor=1.5, timeout=None, deadline=None,
                 sleep=time.sleep, clock=time.monotonic):
        if interval < 0 or (max_interval is not None and max_interval < 0) or factor < 1:
            raise ValueError('intervals must be >= 0 and factor >= 1')
        if timeout is not None and deadline is not None:
            raise ValueError('a timeout or a deadline, not both')
        self._clock = clock
        self._sleep = sleep
        self.start = clock()
        self.max_interval = float(interval if max_interval is None else max_interval)
        self.interval = min(float(interval), self.max_interval)   # the next pause, before the deadline cut
        self.first = self.interval
        self.factor = float(factor)
        if timeout is not None:
            deadline = self.start + float(timeout)
        self.deadline = None if deadline is None else float(deadline)
        self.pauses = 0

    def elapsed(self):
        """Seconds since the Pace was made."""
        return self._clock() - self.start

    def left(self):
        """Seconds until the deadline (negative once past it; infinite without one)."""
        return math.inf if self.deadline is None else self.deadline - self._clock()

    def expired(self):
        """Has the deadline come?"""
        return self.left() <= 0

    def delay(self, at_most=None, at_least=0.0):
        """The next pause, cut at the deadline (0 when no time is left); the pace then grows."""
        pause = self.interval if at_most is None else min(self.interval, at_most)
        pause = max(0.0, min(max(at_least, pause), self.left()))
        self.interval = min(self.max_interval, self.interval * self.factor)
        self.pauses += 1
        return pause

    def reset(self):
        """Start the growth again from the first interval (the deadline stays): a wait whose last round saw
        progress expects the next change soon, so it looks again soon; an idle wait still slows down."""
        self.interval = self.first

    def sleep(self, at_most=None, at_least=0.0):
        """Take the next pause (see delay); returns the seconds slept."""
        pause = self.delay(at_most, at_least)
        if pause > 0:
            self._sleep(pause)
        return pause

    def __repr__(self):
        return 'Pace(interval={0!r}, max_interval={1!r}, factor={2!r}, deadline={3!r})'.format(
            self.interval, self.max_interval, self.factor, self.deadline)


def _not_yet(exc, is_transient):
    """Does a probe's error count as "not yet" (else it propagates)?"""
    return is_transient is not None and not is_outcome(exc) and is_transient(exc)


def _timed_out(what, timeout, pace, last, last_error):
    detail = '; last error: {0}'.format(last_error) if last_error is not None else ''
    return WaitTimeout('{0} not reached within {1:g}s{2}'.format(what, timeout, detail),
                       last=last, elapsed=pace.elapsed(), last_error=last_error)


def wait_until(probe, condition, timeout, interval=1.0, max_interval=None, is_transient=None,
               sleep=time.sleep, clock=time.monotonic, what='condition'):
    """Call probe() until condition(value) is true; return that value.

    Polls every `interval` seconds, growing by half each time up to `max_interval` (default: interval,
    i.e. a fixed pace; see Pace). Errors that is_transient accepts count as "not yet"; others (and any
    Outcome) propagate. Raises WaitTimeout (with the last value and error) once `timeout` seconds have
    passed. The probe is always called at least once, and once more at the deadline if time is left, so
    a fast success is never missed.
    """
    pace = Pace(interval, max_interval, timeout=timeout, sleep=sleep, clock=clock)
    last, last_error = None, None
    while True:
        try:
            last = probe()
            last_error = None
            if condition(last):
                return last
        except Exception as exc:  # noqa: BLE001 - the predicate decides
            if not _not_yet(exc, is_transient):
                raise
            last_error = exc
        if pace.expired():
            raise _timed_out(what, timeout, pace, last, last_error)
        pace.sleep()


async def wait_until_async(probe, condition, timeout, interval=1.0, max_interval=None, is_transient=None,
                           sleep=None, clock=None, what='condition'):
    """wait_until for coroutines: ``await probe()`` until condition(value) is true; return that value.

    The same arguments, rules and WaitTimeout; ``sleep`` is an async function (default asyncio.sleep),
    ``clock`` defaults to the running event loop's time.
    """
    if sleep is None or clock is None:
        import asyncio  # only the coroutines need it
        sleep = sleep or asyncio.sleep
        clock = clock or asyncio.get_running_loop().time
    pace = Pace(interval, max_interval, timeout=timeout, sleep=None, clock=clock)
    last, last_error = None, None
    while True:
        try:
            last = await probe()
            last_error = None
            if condition(last):
                return last
        except Exception as exc:  # noqa: BLE001 - the predicate decides
            if not _not_yet(exc, is_transient):
                raise
            last_error = exc
        if pace.expired():
            raise _timed_out(what, timeout, pace, last, last_error)
        await sleep(pace.delay())
