"""Unit tests of plugins/module_utils/retry.py: bounded retries, backoff, jitter, deadline, polling."""

from __future__ import annotations

import asyncio
import random

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.outcomes import Outcome
from ansible_collections.tazlab.resilience.plugins.module_utils.retry import (
    Pace,
    RetryPolicy,
    WaitTimeout,
    backoff_delay,
    retry_call,
    wait_until,
    wait_until_async,
)
from fake_clock import FakeClock as Clock


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


# -- Pace: the pacing rule of every wait ---------------------------------------------------------------

def test_pace_grows_by_factor_up_to_max_interval():
    clock = Clock()
    pace = Pace(0.25, max_interval=2, factor=1.5, sleep=clock.sleep, clock=clock)
    for dummy in range(8):
        pace.sleep()
    # the force_detach rhythm: 0.25 s, growing by half, up to poll_interval
    assert clock.sleeps == [0.25, 0.375, 0.5625, 0.84375, 1.265625, 1.8984375, 2, 2]
    assert pace.pauses == 8 and pace.left() == float('inf') and not pace.expired()


def test_pace_fixed_by_default_and_first_pause_capped_by_max_interval():
    clock = Clock()
    pace = Pace(3, sleep=clock.sleep, clock=clock)
    pace.sleep()
    pace.sleep()
    assert clock.sleeps == [3, 3]
    capped = Pace(0.25, max_interval=0.1, sleep=clock.sleep, clock=clock)
    assert capped.delay() == 0.1 and capped.delay() == 0.1


def test_pace_never_sleeps_past_the_deadline():
    clock = Clock()
    clock.now = 100.0
    pace = Pace(2, timeout=5, sleep=clock.sleep, clock=clock)
    assert pace.deadline == 105.0 and pace.left() == 5
    slept = [pace.sleep() for dummy in range(4)]
    assert slept == [2, 2, 1, 0]
    assert clock.sleeps == [2, 2, 1]    # no sleep call once no time is left
    assert clock.now == 105.0 and pace.expired() and pace.elapsed() == 5


def test_pace_absolute_deadline_and_bounds_of_one_pause():
    clock = Clock()
    pace = Pace(2, deadline=10, sleep=clock.sleep, clock=clock)
    assert pace.sleep(at_most=0.5) == 0.5          # shortened: e.g. "sleep until the silence is due"
    assert pace.sleep(at_most=-3, at_least=0.2) == 0.2   # a floor, so a due time in the past never spins
    clock.now = 9.9
    assert pace.sleep(at_least=0.2) == pytest.approx(0.1)   # the floor never runs past the deadline either
    assert pace.expired()


@pytest.mark.parametrize('kwargs', [dict(interval=-1), dict(max_interval=-1), dict(factor=0.9),
                                    dict(timeout=1, deadline=2)])
def test_pace_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        Pace(**kwargs)


def test_wait_until_probes_once_more_at_the_deadline():
    clock = Clock()
    seen = []

    def probe():
        seen.append(clock.now)
        return clock.now
    with pytest.raises(WaitTimeout) as info:
        wait_until(probe, lambda v: False, timeout=5, interval=2, sleep=clock.sleep, clock=clock)
    assert seen == [0, 2, 4, 5] and info.value.elapsed == 5 and info.value.last == 5


def test_wait_until_timeout_zero_probes_once():
    clock = Clock()
    with pytest.raises(WaitTimeout):
        wait_until(lambda: 1, lambda v: False, timeout=0, sleep=clock.sleep, clock=clock)
    assert clock.sleeps == []


def test_wait_until_never_retries_an_outcome():
    clock = Clock()

    def probe():
        raise Outcome('ran out')
    with pytest.raises(Outcome):
        wait_until(probe, bool, timeout=10, is_transient=lambda exc: True, sleep=clock.sleep, clock=clock)
    assert clock.sleeps == []


# -- wait_until_async: the same for coroutines -------------------------------------------------------------

def run(coro):
    return asyncio.run(coro)


def test_wait_until_async_returns_first_value_meeting_condition():
    clock = Clock()
    values = iter(['a', 'b', 'done'])

    async def probe():
        return next(values)
    assert run(wait_until_async(probe, lambda v: v == 'done', timeout=10, interval=1, max_interval=4,
                                sleep=clock.asleep, clock=clock)) == 'done'
    assert clock.sleeps == [1, 1.5]


def test_wait_until_async_times_out_at_the_deadline_with_last_value_and_error():
    clock = Clock()
    answers = iter(['running', Transient('reset')] * 10)

    async def probe():
        value = next(answers)
        if isinstance(value, Exception):
            raise value
        return value
    with pytest.raises(WaitTimeout) as info:
        run(wait_until_async(probe, lambda v: v == 'stopped', timeout=5, interval=2, is_transient=transient,
                             sleep=clock.asleep, clock=clock, what='stop'))
    assert clock.sleeps == [2, 2, 1] and clock.now == 5
    # the probes: running, reset, running, reset (at the deadline)
    assert info.value.last == 'running' and isinstance(info.value.last_error, Transient)
    assert 'stop not reached within 5s; last error: reset' in str(info.value)


def test_wait_until_async_other_errors_and_outcomes_propagate():
    clock = Clock()

    async def fatal():
        raise Fatal('no')

    async def outcome():
        raise Outcome('over')
    with pytest.raises(Fatal):
        run(wait_until_async(fatal, bool, timeout=10, is_transient=transient, sleep=clock.asleep, clock=clock))
    with pytest.raises(Outcome):
        run(wait_until_async(outcome, bool, timeout=10, is_transient=lambda exc: True, sleep=clock.asleep,
                             clock=clock))
    assert clock.sleeps == []


def test_wait_until_async_defaults_to_the_loop_clock_and_asyncio_sleep():
    calls = []

    async def probe():
        calls.append(1)
        return len(calls)

    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        value = await wait_until_async(probe, lambda v: v == 3, timeout=5, interval=0.01)
        return value, loop.time() - t0
    value, took = run(main())
    assert value == 3 and 0.02 <= took < 2


def test_a_pace_reset_starts_the_growth_again_and_keeps_the_deadline():
    clock = Clock()
    pace = Pace(0.25, max_interval=2, factor=2, timeout=3, sleep=clock.sleep, clock=clock)
    assert [pace.sleep() for dummy in range(3)] == [0.25, 0.5, 1.0]
    pace.reset()
    assert pace.sleep() == 0.25 and pace.sleep() == 0.5
    assert pace.left() == pytest.approx(3 - 2.5)
    assert pace.sleep() == pytest.approx(0.5) and pace.expired()    # cut at the deadline, reset or not
