import asyncio

import pytest

from tazlab_lab.clock import DEFAULT_START, SimClock


def run(coro):
    return asyncio.run(coro)


def test_advance_runs_timers_in_deadline_order_at_their_time():
    async def main():
        clock = SimClock()
        seen = []
        clock.call_later(5, lambda: seen.append(("b", clock.now() - DEFAULT_START)))
        clock.call_later(2, lambda: seen.append(("a", clock.now() - DEFAULT_START)))
        await clock.advance(4)
        assert seen == [("a", 2.0)]
        assert clock.now() == DEFAULT_START + 4
        await clock.advance(10)
        assert seen == [("a", 2.0), ("b", 5.0)]
        assert clock.now() == DEFAULT_START + 14
    run(main())


def test_periodic_timer_and_cancel_and_nested_scheduling():
    async def main():
        clock = SimClock(start=0)
        ticks, nested = [], []

        async def tick():
            ticks.append(clock.now())
            if clock.now() == 20:
                clock.call_later(1, lambda: nested.append(clock.now()))

        timer = clock.every(10, tick)
        await clock.advance(35)
        assert ticks == [10, 20, 30]
        assert nested == [21]
        timer.cancel()
        await clock.advance(100)
        assert ticks == [10, 20, 30]
    run(main())


def test_sleep_wakes_in_simulated_time_and_errors_are_collected():
    async def main():
        clock = SimClock(start=0)
        woke = []

        async def sleeper():
            await clock.sleep(30)
            woke.append(clock.now())

        task = asyncio.create_task(sleeper())
        await asyncio.sleep(0)
        clock.call_later(1, lambda: 1 / 0)
        await clock.advance(29)
        assert woke == []
        await clock.advance(1)
        await task
        assert woke == [30]
        assert len(clock.errors) == 1 and isinstance(clock.errors[0], ZeroDivisionError)
        assert await clock.run_until(lambda: clock.now() >= 45, timeout=60, step=5)
        assert clock.now() == 45
        assert not await clock.run_until(lambda: False, timeout=10)
    run(main())


def test_real_time_driver_moves_time_by_scale():
    async def main():
        clock = SimClock(start=0)
        fired = []
        clock.call_later(50, lambda: fired.append(clock.now()))
        clock.start(time_scale=0.002)  # 500 simulated seconds per real second
        await asyncio.sleep(0.3)
        await clock.stop()
        assert fired == [50]
        assert 100 < clock.now() < 400
        with pytest.raises(ValueError):
            clock.start(time_scale=0)
    run(main())
