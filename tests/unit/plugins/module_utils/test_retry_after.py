"""retry_call honours Retry-After and its deadline (fake clock, no sleeping)."""

import pytest
from fake_clock import FakeClock

from ansible_collections.tazlab.resilience.plugins.module_utils.retry import RetryPolicy, retry_call


class Busy(Exception):
    def __init__(self, after):
        super(Busy, self).__init__('429')
        self.after = after


def test_sleep_is_at_least_what_the_server_asked():
    clock = FakeClock()
    calls = []

    def func():
        calls.append(clock.now)
        if len(calls) < 3:
            raise Busy(5)
        return 'ok'
    policy = RetryPolicy(attempts=10, base_delay=0.5, jitter=0, deadline=45)
    assert retry_call(func, lambda e: True, policy, sleep=clock.sleep, clock=clock,
                      retry_after=lambda e: e.after) == 'ok'
    assert clock.sleeps == [5.0, 5.0]


def test_retry_after_beyond_the_deadline_raises_at_once():
    clock = FakeClock()
    policy = RetryPolicy(attempts=10, base_delay=0.5, jitter=0, deadline=10)

    def func():
        raise Busy(60)
    with pytest.raises(Busy):
        retry_call(func, lambda e: True, policy, sleep=clock.sleep, clock=clock, retry_after=lambda e: e.after)
    assert clock.sleeps == []


def test_deadline_bounds_many_attempts_in_tens_of_seconds():
    clock = FakeClock()
    policy = RetryPolicy(attempts=20, base_delay=0.5, max_delay=8, jitter=0, deadline=45)

    def func():
        raise IOError('reset')
    with pytest.raises(IOError):
        retry_call(func, lambda e: True, policy, sleep=clock.sleep, clock=clock)
    assert 40 <= clock.now <= 45 and len(clock.sleeps) >= 8
