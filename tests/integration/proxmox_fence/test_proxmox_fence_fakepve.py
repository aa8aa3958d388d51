"""proxmox_fence (the real module) against fakepve: success, idempotency, check mode, identity, HA, faults."""

from __future__ import annotations

import threading
import time

import pytest

from proxmox_fence_helpers import add_vm, run_module, uuid_of, writes

pytestmark = pytest.mark.fakepve(time_scale=0.01)


@pytest.mark.parametrize('kind', ['password', 'token'])
@pytest.mark.parametrize('vmid, node, task', [(100, 'pve1', 'qmstop'), (101, 'pve2', 'hastop')])
def test_off_fences_and_second_run_is_unchanged(pve, auth, kind, vmid, node, task):
    started = time.monotonic()
    failed, res = run_module(dict(auth(kind), vmid=vmid, expected_system_uuid=uuid_of(vmid).lower()), diff=True)
    wall = time.monotonic() - started
    assert not failed, res
    assert res['fenced'] is True and res['changed'] is True
    assert res['power_state_before'] == 'running' and res['power_state_after'] == 'stopped'
    assert pve.vm(vmid).status == 'stopped'  # the ground truth
    assert ':{0}:{1}:'.format(task, vmid) in res['upid'] and res['upid'].startswith('UPID:{0}:'.format(node))
    assert res['exitstatus'] == 'OK'
    assert res['smbios_uuid'] == uuid_of(vmid) and res['node'] == node and res['identity_verified'] is True
    assert res['diff'] == {'before': {'power_state': 'running', 'ha_state': 'started' if task == 'hastop' else None},
                           'after': {'power_state': 'stopped', 'ha_state': 'stopped' if task == 'hastop' else None}}
    assert 0 < res['elapsed'] <= wall
    assert res['timestamp'].endswith('Z')
    if task == 'hastop':
        assert res['ha_state_after'] == 'stopped'
    mark = len(pve.requests)
    failed, again = run_module(dict(auth(kind), vmid=vmid))
    assert not failed and again['changed'] is False and again['fenced'] is True
    assert writes(pve, mark) == []


def test_hastop_ok_is_not_proof_the_vm_is_polled_until_stopped(pve, auth):
    pve.ha_delay = 100  # the HA manager takes 1 s (time_scale 0.01) after the hastop task ended OK
    failed, res = run_module(dict(auth('token'), vmid=101, poll_interval=0.1))
    assert not failed and res['fenced'] is True
    assert res['elapsed'] >= 0.9
    polls = [p for m, p, dummy in pve.requests if p.endswith('/qemu/101/status/current')]
    assert len(polls) >= 4


def test_lookup_by_name_finds_vm_on_its_node(pve, auth):
    failed, res = run_module(dict(auth(), name='vm-101', action='status'))
    assert not failed and res['node'] == 'pve2' and res['vmid'] == 101 and res['power_state_after'] == 'running'
    failed, res = run_module(dict(auth(), name='vm-101', node='pve1'))
    assert failed and res['error']['kind'] == 'not_found' and res['fenced'] is False


@pytest.mark.parametrize('kind', ['password', 'token'])
def test_check_mode_makes_no_write_request(pve, auth, kind):
    mark = len(pve.requests)
    failed, res = run_module(dict(auth(kind), vmid=101, ha_state='ignored', graceful=True), check_mode=True, diff=True)
    assert not failed
    assert res['changed'] is True and res['fenced'] is False
    assert [s['op'] for s in res['plan']['steps']] == ['shutdown', 'set_ha_state', 'stop', 'confirm_stopped']
    assert res['diff']['after'] == {'power_state': 'stopped', 'ha_state': 'ignored'}
    assert writes(pve, mark) == []
    assert {m for m, p, dummy in pve.requests[mark:]} <= ({'GET', 'POST'} if kind == 'password' else {'GET'})
    assert pve.vm(101).status == 'running'


def test_identity_mismatch_refuses_before_any_write(pve, auth):
    mark = len(pve.requests)
    failed, res = run_module(dict(auth(), vmid=100, expected_system_uuid=uuid_of(999)))
    assert failed and res['error']['kind'] == 'identity_mismatch' and res['fenced'] is False
    assert res['changed'] is False
    assert writes(pve, mark) == []
    assert pve.vm(100).status == 'running'


def test_ha_ignored_is_set_before_the_stop(pve, auth):
    """The order of the writes (plain fakepve does not store HA resources: the read-back, the restore and
    the second run are in test_ha_in_the_lab.py, against the lab's HA model)."""
    failed, res = run_module(dict(auth(), vmid=101, ha_state='ignored'))
    assert not failed and res['fenced'] is True
    w = writes(pve)
    assert w.index(('PUT', '/api2/json/cluster/ha/resources/vm:101')) < w.index(
        ('POST', '/api2/json/nodes/pve2/qemu/101/status/stop'))
    assert any(b'state=ignored' in body for m, p, body in pve.requests if m == 'PUT')


def test_reboot_is_stop_confirm_start_never_reset(pve, auth):
    failed, res = run_module(dict(auth(), vmid=100, action='reboot'))
    assert not failed and res['power_state_after'] == 'running' and res['fenced'] is False
    assert [p.rsplit('/', 1)[1] for m, p in writes(pve)] == ['stop', 'start']
    assert not any('reset' in p for m, p, dummy in pve.requests)


def test_graceful_shutdown_then_hard_stop(pve, auth):
    pve.vm(100).shutdown_secs = 5
    failed, res = run_module(dict(auth(), vmid=100, graceful=True, shutdown_timeout=5))
    assert not failed and res['fenced'] is True
    assert [p.rsplit('/', 1)[1] for m, p in writes(pve)] == ['shutdown', 'stop']


def test_graceful_shutdown_ignored_by_guest_falls_back_to_hard_stop(pve, auth):
    pve.vm(100).acpi = False
    started = time.monotonic()
    failed, res = run_module(dict(auth(), vmid=100, graceful=True, shutdown_timeout=1))
    assert not failed and res['fenced'] is True
    assert 1 <= time.monotonic() - started < 5
    assert any('graceful shutdown did not finish' in w for w in res['warnings']) and 'notes' not in res


def test_flaky_network_is_survived_by_retries(pve, auth):
    add_vm(pve, 120, 'pve1')
    pve.flaky_network(drop_rate=0.3, seed=11)
    pve._random.seed(11)  # the seed is applied at start(); the fake is already serving
    failed, res = run_module(dict(auth('token'), vmid=120))
    assert not failed, res
    assert res['fenced'] is True and pve.vm(120).status == 'stopped'
    assert res['api_retries'] >= 1


def test_skiplock_with_root_password_stops_a_locked_vm(pve, auth):
    pve.snapshot_lock(100, 'backup')
    failed, res = run_module(dict(auth(), vmid=100, skiplock=True))
    assert not failed and res['fenced'] is True
    assert any(b'skiplock=1' in body for m, p, body in pve.requests if p.endswith('/status/stop'))


def test_skiplock_with_token_refused_before_any_request(pve, auth):
    mark = len(pve.requests)
    failed, res = run_module(dict(auth('token'), vmid=100, skiplock=True))
    assert failed and res['error']['kind'] == 'invalid' and res['fenced'] is False
    assert pve.requests[mark:] == []


def test_ticket_revoked_mid_fence_is_renewed_once(pve, auth):
    pve.ha_delay = 100  # the HA VM goes down 1 s after hastop: the module is polling when the ticket dies
    timer = threading.Timer(0.4, pve.revoke_tickets)
    timer.start()
    try:
        failed, res = run_module(dict(auth('password'), vmid=101, poll_interval=0.1))
    finally:
        timer.cancel()
    assert not failed, res
    assert res['fenced'] is True and pve.vm(101).status == 'stopped'
    assert len([p for m, p, dummy in pve.requests if p.endswith('/access/ticket')]) == 2


def test_wrong_password_and_wrong_token_fail_without_retry(pve, auth):
    failed, res = run_module(dict(auth('password', api_password='nope'), vmid=100))
    assert failed and res['error']['kind'] == 'auth_rejected' and res['fenced'] is False
    assert len([p for m, p, dummy in pve.requests if p.endswith('/access/ticket')]) == 1
    failed, res = run_module(dict(auth('token', api_token_secret='00000000-dead-beef-0000-000000000000'), vmid=100))
    assert failed and res['error']['kind'] == 'auth_rejected' and res['fenced'] is False
    assert pve.vm(100).status == 'running'
