"""Unit tests of plugins/module_utils/retry.py: bounded retries, backoff, jitter, deadline, polling."""

from __future__ import annotations

import random

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.retry import (
    RetryPolicy,
    WaitTimeout,
    backoff_delay,
    retry_call,
    wait_until,
)


class Clock(object):
    """A fake monotonic clock; sleep() advances it."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, secs):
        assert secs >= 0
        self.sleeps.append(secs)
        self.now += secs


class Transient(Exception):
    pass


class Fatal(Exception):
    pass


def flaky(failures, exc=Transient, value='ok'):
    calls = []

    def func():
        calls.append(1)
        if len(calls) <= failures:
            raise exc('fail {0}'.format(len(calls)))
        return value
    func.calls = calls
    return func


def transient(exc):
    return isinstance(exc, Transient)


def test_returns_after_transient_failures_with_exponential_delays():
    clock = Clock()
    func = flaky(3)
    policy = RetryPolicy(attempts=5, base_delay=1, factor=2, max_delay=100, jitter=0)
    assert retry_call(func, transient, policy, sleep=clock.sleep, clock=clock) == 'ok'
    assert len(func.calls) == 4
    assert clock.sleeps == [1, 2, 4]


def test_max_delay_caps_each_sleep():
    clock = Clock()
    policy = RetryPolicy(attempts=6, base_delay=1, factor=10, max_delay=5, jitter=0)
    retry_call(flaky(5), transient, policy, sleep=clock.sleep, clock=clock)
    assert clock.sleeps == [1, 5, 5, 5, 5]


def test_non_transient_error_propagates_at_once():
    clock = Clock()
    func = flaky(1, exc=Fatal)
    with pytest.raises(Fatal):
        retry_call(func, transient, RetryPolicy(attempts=5), sleep=clock.sleep, clock=clock)
    assert len(func.calls) == 1 and clock.sleeps == []


def test_attempts_bound_and_last_error_raised_unchanged():
    clock = Clock()
    func = flaky(10)
    with pytest.raises(Transient, match='fail 3'):
        retry_call(func, transient, RetryPolicy(attempts=3, base_delay=0.1, jitter=0), sleep=clock.sleep, clock=clock)
    assert len(func.calls) == 3


def test_deadline_cuts_sleep_and_stops_new_attempts():
    clock = Clock()
    func = flaky(100)
    policy = RetryPolicy(attempts=100, base_delay=1, factor=2, max_delay=60, jitter=0, deadline=10)
    with pytest.raises(Transient):
        retry_call(func, transient, policy, sleep=clock.sleep, clock=clock)
    # 1 + 2 + 4 = 7, then the 8 s sleep is cut to the 3 s left; no attempt starts after the deadline.
    assert clock.sleeps == [1, 2, 4, 3]
    assert clock.now == 10
    assert len(func.calls) == 5


def test_jitter_stays_within_bounds_and_varies():
    policy = RetryPolicy(base_delay=2, factor=2, max_delay=100, jitter=0.5)
    rng = random.Random(7)
    delays = [backoff_delay(3, policy, rng) for dummy in range(200)]
    assert all(4.0 <= d <= 8.0 for d in delays)
    assert len(set(delays)) > 100
    full = RetryPolicy(base_delay=2, factor=2, max_delay=100, jitter=1.0)
    assert all(0.0 <= backoff_delay(2, full, rng) <= 4.0 for dummy in range(100))


def test_on_retry_sees_each_failure():
    clock = Clock()
    seen = []
    retry_call(flaky(2), transient, RetryPolicy(attempts=3, base_delay=1, jitter=0),
               on_retry=lambda s: seen.append((s.attempt, str(s.error), s.delay)), sleep=clock.sleep, clock=clock)
    assert seen == [(1, 'fail 1', 1.0), (2, 'fail 2', 2.0)]


@pytest.mark.parametrize('kwargs', [dict(attempts=0), dict(jitter=1.5), dict(factor=0.5), dict(deadline=-1),
                                    dict(base_delay=-1)])
def test_policy_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_wait_until_returns_first_value_meeting_condition():
    clock = Clock()
    values = iter(['a', 'b', 'c', 'done'])
    assert wait_until(lambda: next(values), lambda v: v == 'done', timeout=10, interval=1,
                      sleep=clock.sleep, clock=clock) == 'done'
    assert clock.sleeps == [1, 1, 1]


def test_wait_until_times_out_with_last_value():
    clock = Clock()
    with pytest.raises(WaitTimeout) as info:
        wait_until(lambda: 'running', lambda v: v == 'stopped', timeout=5, interval=1, max_interval=4,
                   sleep=clock.sleep, clock=clock, what='stop')
    assert info.value.last == 'running'
    assert clock.now == pytest.approx(5)
    assert 'stop not reached within 5s' in str(info.value)
    # The pace grows by half up to max_interval; the last sleep is cut at the timeout.
    assert clock.sleeps[:3] == [1, 1.5, 2.25]


def test_wait_until_transient_errors_are_not_yet_and_others_raise():
    clock = Clock()
    answers = iter([Transient('x'), Transient('y'), 'ok'])

    def probe():
        value = next(answers)
        if isinstance(value, Exception):
            raise value
        return value
    assert wait_until(probe, lambda v: v == 'ok', timeout=10, is_transient=transient,
                      sleep=clock.sleep, clock=clock) == 'ok'

    def fatal():
        raise Fatal('no')
    with pytest.raises(Fatal):
        wait_until(fatal, bool, timeout=10, is_transient=transient, sleep=clock.sleep, clock=clock)


def test_wait_until_timeout_reports_last_transient_error():
    clock = Clock()

    def probe():
        raise Transient('connection reset')
    with pytest.raises(WaitTimeout) as info:
        wait_until(probe, bool, timeout=3, is_transient=transient, sleep=clock.sleep, clock=clock)
    assert 'connection reset' in str(info.value)
    assert isinstance(info.value.last_error, Transient)
