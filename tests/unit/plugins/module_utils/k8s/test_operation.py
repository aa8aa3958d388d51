"""Operation: the base ForceDetach and EndpointFix share (constructor shape, elapsed time, event shape)."""

from __future__ import annotations

import inspect
import os
import sys

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.endpoints import EndpointFix
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach import (
    ForceDetach, Observer, Verifier,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import rfc3339
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.operation import Operation

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k8s_fixtures as fx  # noqa: E402
from fake_clock import FakeClock  # noqa: E402
from fake_k8s import FakeK8s  # noqa: E402


def test_both_operations_are_operations():
    assert issubclass(ForceDetach, Operation) and issubclass(EndpointFix, Operation)
    assert ForceDetach.__mro__[1:4] == (Verifier, Observer, Operation)


def test_same_constructor_shape():
    """client, options, then clock, sleep and now by keyword: the same leading parameters, the same defaults."""
    base = list(inspect.signature(Operation.__init__).parameters.values())
    for cls in (ForceDetach, EndpointFix):
        params = list(inspect.signature(cls.__init__).parameters.values())
        assert [(p.name, p.default) for p in params[:len(base)]] == [(p.name, p.default) for p in base], cls


def test_options_copied_clock_started_and_now_defaults_to_rfc3339():
    clock = FakeClock(100.0)
    options = {'node': 'n1'}
    for cls in (Operation, ForceDetach, EndpointFix):
        op = cls('client', options, clock=clock, sleep=clock.sleep)
        assert op.client == 'client' and op.options == options and op.options is not options
        assert op.start == 100.0 and op.now is rfc3339 and op.sleep == clock.sleep and op.events == []
    stamp = Operation('c', {}, now=lambda: '2026-01-25T21:00:00Z').now()
    assert stamp == '2026-01-25T21:00:00Z'


def test_elapsed_is_seconds_since_start_in_milliseconds():
    clock = FakeClock(100.0)
    op = Operation(None, {}, clock=clock, sleep=clock.sleep)
    assert op.elapsed() == 0.0
    clock.sleep(1.23456)
    assert op.elapsed() == 1.235


def test_event_shape_is_t_event_then_details_in_order():
    clock = FakeClock(100.0)
    op = EndpointFix(None, {}, clock=clock, sleep=clock.sleep)
    first = op.event('written', target='default/kubernetes')
    clock.sleep(2)
    op.event('restarted', kind='Deployment')
    assert op.events == [{'t': 0.0, 'event': 'written', 'target': 'default/kubernetes'},
                         {'t': 2.0, 'event': 'restarted', 'kind': 'Deployment'}]
    assert first is op.events[0] and list(first) == ['t', 'event', 'target']


def test_every_force_detach_event_has_the_shape():
    """A real run's events (the direct steps on the seed cluster) all carry t and event."""
    fake = FakeK8s(fx.seed_objects())
    svc = ForceDetach(fake, {'node': fx.DEAD, 'strategy': 'direct', 'assume_fenced': True, 'wait': False},
                      clock=fake.clock, sleep=fake.clock.sleep, now=lambda: '2026-01-25T21:00:00Z')
    result = svc.run()
    assert result['events'] and result['events'] is svc.events
    for entry in result['events']:
        assert list(entry)[:2] == ['t', 'event'] and isinstance(entry['t'], float)
    assert [e['t'] for e in result['events']] == sorted(e['t'] for e in result['events'])
