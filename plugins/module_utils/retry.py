# -*- coding: utf-8 -*-
# Copyright (c) tazlab.resilience contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded retries with exponential backoff, jitter and an overall deadline.

Generic on purpose: the Proxmox, Kubernetes and Talos helpers all use it. Nothing here knows about
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

``wait_until`` is the polling counterpart: call a probe until a condition holds or a timeout passes,
with the same transient-error handling. Both take ``sleep`` and ``clock`` arguments so tests can run
them without waiting.
"""

from __future__ import annotations

import random
import time

from ansible_collections.tazlab.resilience.plugins.module_utils.outcomes import is_outcome

__all__ = ['RetryPolicy', 'RetryState', 'WaitTimeout', 'backoff_delay', 'retry_call', 'wait_until']


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


def wait_until(probe, condition, timeout, interval=1.0, max_interval=None, is_transient=None,
               sleep=time.sleep, clock=time.monotonic, what='condition'):
    """Call probe() until condition(value) is true; return that value.

    Polls every `interval` seconds, growing by half each time up to `max_interval` (default: interval,
    i.e. a fixed pace). Errors that is_transient accepts count as "not yet"; others (and any Outcome)
    propagate. Raises WaitTimeout (with the last value and error) once `timeout` seconds have passed. The
    probe is always called at least once, and once more at the deadline if time is left, so a fast success
    is never missed.
    """
    start = clock()
    pace = interval
    max_interval = interval if max_interval is None else max_interval
    last, last_error = None, None
    while True:
        try:
            last = probe()
            last_error = None
            if condition(last):
                return last
        except Exception as exc:  # noqa: BLE001 - the predicate decides
            if is_transient is None or is_outcome(exc) or not is_transient(exc):
                raise
            last_error = exc
        elapsed = clock() - start
        left = timeout - elapsed
        if left <= 0:
            detail = '; last error: {0}'.format(last_error) if last_error is not None else ''
            raise WaitTimeout('{0} not reached within {1:g}s{2}'.format(what, timeout, detail),
                              last=last, elapsed=elapsed, last_error=last_error)
        sleep(min(pace, left))
        pace = min(max_interval, pace * 1.5)
