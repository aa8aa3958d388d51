"""Unit tests of the fence planner (pure function: facts + request -> steps) and its refusals."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import errors as E
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.fence import (
    FenceRequest,
    VmFacts,
    plan_fence,
    validate_request,
)

UUID = '5b0d3f1e-8a64-4b8e-9a53-0f4a8d1b7c21'


def facts(**kw):
    base = dict(vmid=100, node='pve1', name='w1', status='running', smbios_uuid=UUID, quorate=True, node_online=True)
    base.update(kw)
    return VmFacts(**base)


def ha(**kw):
    return facts(ha_managed=True, ha_state=kw.pop('ha_state', 'started'), **kw)


def req(**kw):
    return FenceRequest(**kw)


def ops(plan):
    return plan.ops


@pytest.mark.parametrize('f, r, expected', [
    # off
    (facts(), req(), ['stop', 'confirm_stopped']),
    (facts(status='stopped'), req(), []),
    (facts(), req(graceful=True), ['shutdown', 'stop', 'confirm_stopped']),
    (facts(status='stopped'), req(graceful=True), []),
    (ha(), req(), ['stop', 'confirm_stopped']),
    (ha(), req(ha_state='ignored'), ['set_ha_state', 'stop', 'confirm_stopped']),
    (ha(), req(ha_state='disabled'), ['stop', 'confirm_stopped', 'set_ha_state', 'confirm_stopped']),
    (ha(), req(ha_state='ignored', graceful=True), ['shutdown', 'set_ha_state', 'stop', 'confirm_stopped']),
    # stopped, but HA wants it started: stop through HA so its requested state becomes stopped
    (ha(status='stopped', ha_state='started'), req(graceful=True), ['stop', 'confirm_stopped']),
    (ha(status='stopped', ha_state='stopped'), req(), []),
    (ha(status='stopped', ha_state='stopped'), req(ha_state='ignored'), ['set_ha_state', 'confirm_stopped']),
    (ha(status='stopped', ha_state='ignored'), req(ha_state='ignored'), []),
    (ha(status='stopped', ha_state='disabled'), req(ha_state='disabled'), []),
    # a VM HA already ignores is stopped directly
    (ha(ha_state='ignored'), req(ha_state='ignored'), ['stop', 'confirm_stopped']),
    # on
    (facts(status='stopped'), req(action='on'), ['start', 'confirm_running']),
    (facts(), req(action='on'), []),
    (ha(status='stopped', ha_state='stopped'), req(action='on'), ['start', 'confirm_running']),
    (ha(status='stopped', ha_state='ignored'), req(action='on'), ['set_ha_state', 'start', 'confirm_running']),
    (ha(status='stopped', ha_state='disabled'), req(action='on'), ['set_ha_state', 'start', 'confirm_running']),
    (ha(ha_state='ignored'), req(action='on'), ['set_ha_state', 'confirm_running']),
    # reboot: stop, confirm, start; never a reset
    (facts(), req(action='reboot'), ['stop', 'confirm_stopped', 'start', 'confirm_running']),
    (facts(), req(action='reboot', graceful=True), ['shutdown', 'stop', 'confirm_stopped', 'start', 'confirm_running']),
    (facts(status='stopped'), req(action='reboot'), ['start', 'confirm_running']),
    (ha(ha_state='ignored'), req(action='reboot', ha_state='ignored'),
     ['stop', 'confirm_stopped', 'set_ha_state', 'start', 'confirm_running']),
    # status
    (facts(), req(action='status'), []),
    (facts(status='stopped'), req(action='status'), []),
])
def test_plan_steps(f, r, expected):
    plan = plan_fence(f, r)
    assert ops(plan) == expected
    assert plan.changed is any(op in ('set_ha_state', 'shutdown', 'stop', 'start') for op in expected)
    assert 'reset' not in str(plan.as_dict())


def test_expected_power_state_per_action():
    assert plan_fence(facts(), req(action='off')).expect == 'stopped'
    assert plan_fence(facts(status='stopped'), req(action='on')).expect == 'running'
    assert plan_fence(facts(), req(action='reboot')).expect == 'running'
    assert plan_fence(facts(status='stopped'), req(action='status')).expect == 'stopped'


def test_step_arguments_carry_the_bounds_and_options():
    r = req(graceful=True, shutdown_timeout=7, stop_timeout=11, skiplock=True, root_password_login=True,
            ha_state='ignored')
    plan = plan_fence(ha(), r)
    by_op = dict((s.op, s.args) for s in plan.steps)
    assert by_op['shutdown'] == {'timeout': 7}
    assert by_op['stop'] == {'skiplock': True}
    assert by_op['confirm_stopped'] == {'timeout': 11}
    assert by_op['set_ha_state'] == {'state': 'ignored'}
    stop = [s for s in plan.steps if s.op == 'stop'][0]
    assert 'qmstop' in stop.why  # ignored first: the stop bypasses HA
    assert 'hastop' in [s for s in plan_fence(ha(), req()).steps if s.op == 'stop'][0].why


def test_on_restores_ha_started():
    plan = plan_fence(ha(status='stopped', ha_state='ignored'), req(action='on'))
    assert plan.steps[0].args == {'state': 'started'}


def test_planner_is_pure():
    f = ha(lock='backup')
    before = copy.deepcopy(f.as_dict())
    r = req(ha_state='disabled', graceful=True)
    first = plan_fence(f, r).as_dict()
    assert plan_fence(f, r).as_dict() == first
    assert f.as_dict() == before


def test_lock_gives_warning_not_refusal():
    plan = plan_fence(facts(lock='backup'), req())
    assert ops(plan) == ['stop', 'confirm_stopped']
    assert any('locked (backup)' in w for w in plan.warnings)
    assert not plan_fence(facts(lock='backup'), req(skiplock=True, root_password_login=True)).warnings


def test_status_warns_when_ha_will_restart():
    plan = plan_fence(ha(status='stopped', ha_state='started'), req(action='status'))
    assert plan.warnings and 'HA may start it again' in plan.warnings[0]


# -------------------------------------------------------------------------- refusals

@pytest.mark.parametrize('action', ['off', 'on', 'reboot', 'status'])
def test_unknown_power_state_is_refused(action):
    with pytest.raises(E.ProxmoxError) as info:
        plan_fence(facts(status='unknown', node_online=False), req(action=action))
    assert info.value.kind == E.HOST_OFFLINE
    assert 'UNKNOWN' in info.value.message and 'pve1' in info.value.message


def test_no_quorum_is_refused_unless_allowed():
    with pytest.raises(E.ProxmoxError) as info:
        plan_fence(facts(quorate=False), req())
    assert info.value.kind == E.NO_QUORUM
    assert ops(plan_fence(facts(quorate=False), req(require_quorum=False))) == ['stop', 'confirm_stopped']


@pytest.mark.parametrize('expected', [UUID, UUID.upper(), ' {' + UUID.upper() + '} '])
def test_identity_matches_case_insensitively(expected):
    assert ops(plan_fence(facts(), req(expected_system_uuid=expected))) == ['stop', 'confirm_stopped']


@pytest.mark.parametrize('vm_uuid', ['00000000-0000-0000-0000-000000000000', None, ''])
@pytest.mark.parametrize('action', ['off', 'on', 'reboot', 'status'])
def test_identity_mismatch_is_refused(vm_uuid, action):
    with pytest.raises(E.ProxmoxError) as info:
        plan_fence(facts(smbios_uuid=vm_uuid, status='stopped' if action == 'on' else 'running'),
                   req(action=action, expected_system_uuid=UUID))
    assert info.value.kind == E.IDENTITY
    assert UUID in info.value.message and 'nothing was changed' in info.value.message


def test_identity_source_is_named():
    r = req(expected_system_uuid=UUID, identity_source='k8s_node:worker-2')
    with pytest.raises(E.ProxmoxError, match='k8s_node:worker-2'):
        plan_fence(facts(smbios_uuid='other'), r)


def test_template_is_refused():
    with pytest.raises(E.ProxmoxError) as info:
        plan_fence(facts(template=True, status='stopped'), req())
    assert info.value.kind == E.INVALID


@pytest.mark.parametrize('r, needle', [
    (req(skiplock=True), 'skiplock'),
    (req(skiplock=True, root_password_login=False), 'root@pam'),
    (req(action='reset'), 'action'),
    (req(ha_state='stopped'), 'ha_state'),
    (req(stop_timeout=0), 'stop_timeout'),
    (req(shutdown_timeout=-1), 'shutdown_timeout'),
    (req(start_timeout=None), 'start_timeout'),
])
def test_bad_requests_rejected(r, needle):
    with pytest.raises(E.ProxmoxError) as info:
        validate_request(r)
    assert info.value.kind == E.INVALID
    assert needle in info.value.message


def test_skiplock_allowed_for_root_password_login():
    validate_request(req(skiplock=True, root_password_login=True))
