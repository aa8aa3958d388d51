"""dr_drill's module call: the failure shape of refusals and of a cluster not back, the inputs, the libraries."""

from __future__ import annotations

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils import runner
from ansible_collections.tazlab.resilience.plugins.module_utils.drill import module as dm


def test_refusal_and_not_back_carry_their_fields():
    out = runner.failure(dm.DrillRefused(['lease of w3 held by x'], {'nodes': []}, ['w3']))
    assert out['msg'] == 'the drill must not start: lease of w3 held by x' and out['changed'] is False
    assert out['error'] == {'kind': 'refused', 'message': out['msg']}
    assert out['refusals'] == ['lease of w3 held by x'] and out['targets'] == ['w3'] and out['snapshot'] == {'nodes': []}
    out = runner.failure(dm.NotBack(['w3 NotReady'], {'nodes': ['w3']}))
    assert out['error']['kind'] == 'not_back' and out['differences'] == ['w3 NotReady']


def test_bad_timing_options():
    good = {'timeout': 1, 'poll_interval': 0.1, 'wait_timeout': 0}
    assert dm.check_options(good) == []
    for key, value in (('timeout', 0), ('poll_interval', 0), ('wait_timeout', -1)):
        assert dm.check_options(dict(good, **{key: value})) == [
            'timeout and poll_interval must be positive, wait_timeout >= 0']


@pytest.mark.parametrize('action, libs', [('report', ['matplotlib']), ('preflight', ['kubernetes']),
                                          ('verify', ['kubernetes']), ('run', ['kubernetes', 'proxmoxer']),
                                          ('heal', ['kubernetes', 'proxmoxer'])])
def test_each_action_needs_only_its_libraries(action, libs):
    assert [lib for lib, present, trace in dm.libraries({'action': action})] == libs


def test_proxmox_needed_for_run_and_heal():
    with pytest.raises(dm.DrillError) as info:
        dm._proxmox({'proxmox': None, 'action': 'heal'})
    assert str(info.value) == 'proxmox is required for action=heal'
