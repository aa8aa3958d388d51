"""Unit tests of the Proxmox client and the fence executor against a scripted API (no network)."""

from __future__ import annotations

import pytest
from proxmoxer.core import ResourceException

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import errors as E
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import ConnectionSettings
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import (
    ProxmoxClient,
    parse_smbios_uuid,
    upid_node,
)
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.fence import run

from fake_clock import FakeClock
from proxmox_fakeapi import FakeApi, FakeVmState, connection_reset

UUID = '5b0d3f1e-8a64-4b8e-9a53-0f4a8d1b7c21'


def make(vm=None, token=False, user='root@pam'):
    clock = FakeClock(1000.0)
    api = FakeApi(vm)
    if token:
        settings = ConnectionSettings(api_host='h', api_user=user, api_token_id='fence', api_token_secret='s')
    else:
        settings = ConnectionSettings(api_host='h', api_user=user, api_password='pw')
    client = ProxmoxClient(settings, api=api, sleep=clock.sleep, clock=clock)
    return client, api, clock


def params(**kw):
    out = dict(vmid=100, action='off', graceful=False, shutdown_timeout=10, stop_timeout=30, start_timeout=30,
               poll_interval=1.0, skiplock=False, ha_state=None, expected_system_uuid=None, require_quorum=True)
    out.update(kw)
    return out


def go(client, clock, check_mode=False, **kw):
    return run(client, params(**kw), check_mode=check_mode, clock=clock)


# ------------------------------------------------------------------------- client

def test_upid_and_smbios_parsing():
    assert upid_node('UPID:pve2:0000:0001:0002:qmstop:100:root@pam:') == 'pve2'
    with pytest.raises(E.ProxmoxError):
        upid_node('nope')
    assert parse_smbios_uuid('manufacturer=x,uuid=ABC-1,product=y') == 'ABC-1'
    assert parse_smbios_uuid('uuid=abc') == 'abc'
    assert parse_smbios_uuid(None) is None and parse_smbios_uuid('product=z') is None


def test_reads_are_retried_on_network_faults():
    client, api = make()[:2]
    api.fail_next('GET', 'cluster/resources', connection_reset(), times=2)
    vm = client.find_vm(vmid=100)
    assert vm['node'] == 'pve1'
    assert client.retries == 2
    assert [c for c in client.calls if c[1] == 'cluster/resources'] == [('GET', 'cluster/resources')] * 3


def test_reads_are_not_retried_on_definite_errors():
    client, api = make()[:2]
    api.fail_next('GET', 'cluster/status', ResourceException(401, 'x', 'authentication failure'), times=5)
    with pytest.raises(E.ProxmoxError) as info:
        client.cluster_status()
    assert info.value.kind == E.AUTH_REJECTED
    assert client.retries == 0


def test_start_is_sent_once_but_stop_is_retried():
    client, api = make(FakeVmState(status="stopped"))[:2]
    api.fail_next('POST', 'status/start', connection_reset(), times=1)
    with pytest.raises(E.ProxmoxError) as info:
        client.start('pve1', 100)
    assert info.value.kind == E.NETWORK
    assert len([w for w in api.writes() if w[1].endswith('start')]) == 1
    client2, api2 = make()[:2]
    api2.fail_next('POST', 'status/stop', connection_reset(), times=1)
    assert client2.stop('pve1', 100).startswith('UPID:pve1')
    assert len([w for w in api2.writes() if w[1].endswith('stop')]) == 2


def test_find_vm_by_name_and_node_checks():
    client = make()[0]
    assert client.find_vm(name='w1')['vmid'] == 100
    assert client.find_vm(name='w1', node='pve1')['vmid'] == 100
    for kwargs in (dict(name='w1', node='pve9'), dict(vmid=100, node='pve9'), dict(vmid=555), dict(name='nope')):
        with pytest.raises(E.ProxmoxError) as info:
            client.find_vm(**kwargs)
        assert info.value.kind == E.NOT_FOUND


# ----------------------------------------------------------------------- executor

def test_off_non_ha_fences_and_proves_it():
    client, api, clock = make()
    result, error = go(client, clock)
    assert error is None
    assert result['fenced'] is True and result['changed'] is True
    assert result['power_state_before'] == 'running' and result['power_state_after'] == 'stopped'
    assert result['upid'].startswith('UPID:pve1:') and ':qmstop:' in result['upid']
    assert result['exitstatus'] == 'OK'
    assert result['smbios_uuid'].lower() == UUID
    assert result['node'] == 'pve1'
    assert result['timestamp'].endswith('Z') and result['elapsed'] >= 0
    assert result['diff'] == {'before': {'power_state': 'running', 'ha_state': None},
                              'after': {'power_state': 'stopped', 'ha_state': None}}
    # the proof is a status/current read after the stop
    last_write = max(i for i, e in enumerate(api.log) if e[0] != 'GET')
    assert any(p.endswith('status/current') for m, p, dummy in api.log[last_write + 1:])


def test_off_ha_polls_until_really_stopped():
    vm = FakeVmState(ha_state='started')
    vm.ha_delay_polls = 3
    client, api, clock = make(vm)
    result, error = go(client, clock)
    assert error is None and result['fenced'] is True
    assert ':hastop:' in result['upid']
    assert result['ha_state_after'] == 'stopped'
    polls = [p for m, p, dummy in api.log if p.endswith('status/current')]
    assert len(polls) >= 4  # facts + polls until the HA manager acted + final proof


def test_hastop_ok_but_vm_never_stops_is_not_fenced():
    vm = FakeVmState(ha_state='started')
    vm.ha_delay_polls = 10 ** 6
    client, dummy, clock = make(vm)
    result, error = go(client, clock, stop_timeout=5)
    assert error is not None and error.kind == E.TIMEOUT
    assert result['fenced'] is False
    assert result['exitstatus'] == 'OK'  # the hastop task itself succeeded: it proves nothing
    assert result['power_state_after'] == 'running'
    assert 'last status: running' in error.message


def test_locked_vm_real_pve_task_failure_carries_log():
    client, api, clock = make(FakeVmState(lock='backup'))
    result, error = go(client, clock)
    assert error.kind == E.LOCKED
    assert result['fenced'] is False and result['power_state_after'] == 'running'
    assert result['exitstatus'] == 'VM is locked (backup)'
    assert result['error']['task_log'][-1] == 'TASK ERROR: VM is locked (backup)'
    assert 'skiplock' not in str([d for m, p, d in api.log if p.endswith('stop')])


def test_locked_vm_fakepve_style_http_500():
    client, api, clock = make(FakeVmState(lock='backup'))
    api.fail_next('POST', 'status/stop', ResourceException(500, 'x', 'VM is locked (backup)'), times=1)
    result, error = go(client, clock)
    assert error.kind == E.LOCKED and result['fenced'] is False


def test_skiplock_is_sent_for_root_password_login():
    client, api, clock = make(FakeVmState(lock='backup'))
    result, error = go(client, clock, skiplock=True)
    assert error is None and result['fenced'] is True
    assert [d for m, p, d in api.log if p.endswith('status/stop')] == [{'skiplock': 1}]


@pytest.mark.parametrize('user, token', [('root@pam', True), ('admin@pve', False)])
def test_skiplock_refused_before_any_request(user, token):
    client, api, clock = make(token=token, user=user)
    result, error = go(client, clock, skiplock=True)
    assert error.kind == E.INVALID and result['fenced'] is False
    assert api.log == []


def test_failed_task_reports_exitstatus_and_log():
    vm = FakeVmState()
    vm.stop_mode = 'fail:VM quit/powerdown failed'
    client, dummy, clock = make(vm)
    result, error = go(client, clock)
    assert error.kind == E.TASK_FAILED
    assert result['fenced'] is False
    assert result['error']['task_log'] == ['trying to stop VM', 'TASK ERROR: VM quit/powerdown failed']


def test_stop_hanging_past_timeout():
    vm = FakeVmState()
    vm.stop_mode = 'hang'
    client, dummy, clock = make(vm)
    start = clock.now
    result, error = go(client, clock, stop_timeout=8)
    assert error.kind == E.TIMEOUT and result['fenced'] is False
    assert 8 <= clock.now - start <= 8 + 5  # bounded by the timeout (plus the final read)


def test_host_offline_is_unknown_never_off():
    client, api, clock = make(FakeVmState(node_online=False))
    result, error = go(client, clock)
    assert error.kind == E.HOST_OFFLINE
    assert result['power_state_before'] == 'unknown' and result['power_state_after'] == 'unknown'
    assert result['fenced'] is False and api.writes() == []


def test_no_quorum_refused_before_write():
    client, api, clock = make(FakeVmState(quorate=False))
    result, error = go(client, clock)
    assert error.kind == E.NO_QUORUM and result['fenced'] is False and api.writes() == []


def test_identity_mismatch_refused_before_write():
    client, api, clock = make()
    result, error = go(client, clock, expected_system_uuid='00000000-0000-0000-0000-000000000000')
    assert error.kind == E.IDENTITY and result['fenced'] is False and api.writes() == []
    client, api, clock = make()
    result, error = go(client, clock, expected_system_uuid=UUID.upper())
    assert error is None and result['fenced'] is True and result['identity_verified'] is True


def test_final_read_failure_means_unknown_and_not_fenced():
    client, api, clock = make()
    orig = api.handle
    reads = []

    def handle(method, path, data):
        if path.endswith('status/current'):
            reads.append(path)
            if len(reads) >= 3:  # facts read and confirm pass; the PVE node drops out before the proof
                raise ResourceException(595, 'x', 'No route to host')
        return orig(method, path, data)
    api.handle = handle
    result, error = go(client, clock)
    assert result['fenced'] is False
    assert result['power_state_after'] == 'unknown'
    assert error is not None and error.kind == E.HOST_OFFLINE
    assert any('final status read failed' in w for w in result['warnings'])


def test_graceful_shutdown_timeout_falls_through_to_hard_stop():
    client, api, clock = make()
    result, error = go(client, clock, graceful=True, shutdown_timeout=3)
    assert error is None and result['fenced'] is True
    writes = [p.rsplit('/', 1)[1] for m, p in api.writes()]
    assert writes == ['shutdown', 'stop']
    assert any('graceful shutdown did not finish' in w for w in result['warnings'])


def test_already_off_is_unchanged():
    client, api, clock = make(FakeVmState(status='stopped'))
    result, error = go(client, clock)
    assert error is None and result['changed'] is False and result['fenced'] is True
    assert api.writes() == []


def test_check_mode_writes_nothing_and_returns_plan():
    client, api, clock = make(FakeVmState(ha_state='started'))
    result, error = go(client, clock, check_mode=True, ha_state='ignored', graceful=True)
    assert error is None
    assert api.writes() == []
    assert result['changed'] is True and result['fenced'] is False
    assert [s['op'] for s in result['plan']['steps']] == ['shutdown', 'set_ha_state', 'stop', 'confirm_stopped']
    assert result['diff']['after'] == {'power_state': 'stopped', 'ha_state': 'ignored'}


def test_ha_ignored_then_on_restores_started():
    vm = FakeVmState(ha_state='started')
    client, api, clock = make(vm)
    result, error = go(client, clock, ha_state='ignored')
    assert error is None and result['fenced'] is True
    assert ':qmstop:' in result['upid']  # HA ignores it: a direct stop
    assert vm.ha_state == 'ignored'
    client, api, clock = make(vm)
    result, error = go(client, clock, action='on')
    assert error is None and result['power_state_after'] == 'running' and result['fenced'] is False
    assert ('PUT', 'cluster/ha/resources/vm:100', {'state': 'started'}) in api.log


def test_reboot_stops_confirms_then_starts_never_reset():
    client, api, clock = make()
    result, error = go(client, clock, action='reboot')
    assert error is None
    assert [p.rsplit('/', 1)[1] for m, p in api.writes()] == ['stop', 'start']
    assert result['power_state_after'] == 'running' and result['fenced'] is False
    stop_at = next(i for i, e in enumerate(api.log) if e[1].endswith('status/stop'))
    start_at = next(i for i, e in enumerate(api.log) if e[1].endswith('status/start'))
    assert any(e[1].endswith('status/current') for e in api.log[stop_at:start_at])


# ------------------------------------------------------------ identity extension point

def k8s_like_resolver(uuids):
    """What a `k8s_node` option will plug in: node name -> systemUUID (here from a dict)."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.fence import IdentityResolver
    return IdentityResolver('k8s_node', lambda name, params: uuids.get(name))


def test_resolver_supplies_identity_and_names_its_source():
    client, api, clock = make()
    resolver = k8s_like_resolver({'worker-1': UUID.upper(), 'worker-2': '99999999-0000-0000-0000-000000000000'})
    res, err = run(client, params(k8s_node='worker-2'), clock=clock, resolvers=[resolver])
    assert err.kind == E.IDENTITY and 'k8s_node:worker-2' in err.message
    assert api.writes() == [] and res['fenced'] is False
    res, err = run(client, params(k8s_node='worker-1'), clock=clock, resolvers=[resolver])
    assert err is None and res['fenced'] is True and res['identity_verified'] is True


def test_resolver_without_uuid_or_disagreeing_sources_refuse_before_any_request():
    client, api, clock = make()
    resolver = k8s_like_resolver({'worker-1': UUID})
    res, err = run(client, params(k8s_node='ghost'), clock=clock, resolvers=[resolver])
    assert err.kind == E.IDENTITY and api.log == []
    res, err = run(client, params(k8s_node='worker-1', expected_system_uuid='11111111-0000-0000-0000-000000000000'),
                   clock=clock, resolvers=[resolver])
    assert err.kind == E.INVALID and 'disagree' in err.message and api.log == []


# ------------------------------------------------------------------ ticket renewal

def test_dead_ticket_gets_one_new_login_then_the_request_again():
    api = FakeApi()
    logins = []

    def connect():
        logins.append(1)
        return api
    settings = ConnectionSettings(api_host='h', api_password='pw')
    client = ProxmoxClient(settings, connect=connect, sleep=lambda s: None)
    assert client.cluster_status()['quorate'] is True
    api.fail_next('POST', 'status/stop', ResourceException(401, 'x', 'permission denied - invalid PVE ticket'))
    assert client.stop('pve1', 100).startswith('UPID:')
    assert len(logins) == 2 and client.relogins == 1
    assert len([w for w in api.writes() if w[1].endswith('status/stop')]) == 2
    # only once per client: a ticket refused again is an answer
    api.fail_next('GET', 'cluster/status', ResourceException(401, 'x', 'permission denied - invalid PVE ticket'))
    with pytest.raises(E.ProxmoxError) as info:
        client.cluster_status()
    assert info.value.kind == E.AUTH_REJECTED and len(logins) == 2


def test_refused_token_is_not_retried_with_a_login():
    api = FakeApi()
    logins = []

    def connect():
        logins.append(1)
        return api
    settings = ConnectionSettings(api_host='h', api_token_id='fence', api_token_secret='s3cr3t')
    client = ProxmoxClient(settings, connect=connect, sleep=lambda s: None)
    api.fail_next('GET', 'cluster/status', ResourceException(401, 'x', 'authentication failure'))
    with pytest.raises(E.ProxmoxError) as info:
        client.cluster_status()
    assert info.value.kind == E.AUTH_REJECTED and len(logins) == 1


def test_check_mode_reports_an_already_stopped_vm_fenced_and_a_running_one_only_would_be():
    client, api, clock = make(FakeVmState(status='stopped'))
    result, error = go(client, clock, check_mode=True)
    assert error is None and result['fenced'] is True and result['would_fence'] is True and api.writes() == []
    client, api, clock = make(FakeVmState(status='running'))
    result, error = go(client, clock, check_mode=True)
    assert error is None and result['fenced'] is False and result['would_fence'] is True and api.writes() == []
    # An HA VM HA would start again is not fenced, in check mode either, unless the plan stops HA for it.
    client, api, clock = make(FakeVmState(status='stopped', ha_state='started'))
    result, error = go(client, clock, check_mode=True)
    assert result['fenced'] is False and result['would_fence'] is False
    client, api, clock = make(FakeVmState(status='stopped', ha_state='started'))
    result, error = go(client, clock, check_mode=True, ha_state='ignored')
    assert result['fenced'] is True and api.writes() == []


def test_missing_privilege_is_named_before_any_write():
    """A fencing token without VM.PowerMgmt: refused with the privilege and path named, nothing written."""
    client, api, clock = make(token=True, user='fence@pve')
    api.permissions = {'/vms': {'VM.Audit': 1}}
    result, error = go(client, clock)
    assert error.kind == E.PERMISSION and 'VM.PowerMgmt on /vms/100' in error.message
    assert 'fence@pve!fence' in error.message and api.writes() == []
    api.permissions = {'/vms/100': {'VM.Audit': 1, 'VM.PowerMgmt': 1}}
    result, error = go(client, clock)
    assert error is None and result['fenced'] is True and result['permissions_checked'] == ['VM.PowerMgmt on /vms/100']


def test_setting_ha_state_needs_sys_console():
    client, api, clock = make(vm=FakeVmState(ha_state='started'), token=True, user='fence@pve')
    api.permissions = {'/vms/100': {'VM.Audit': 1, 'VM.PowerMgmt': 1}}
    result, error = go(client, clock, ha_state='ignored')
    assert error.kind == E.PERMISSION and 'Sys.Console on /' in error.message and api.writes() == []


# ------------------------------------------------------------------------- dr_drill's hard stop

def test_drill_hard_stop_runs_the_fence_executor_and_proves_the_stop():
    """dr_drill's power_off fault goes through FenceExecutor.run, the path proxmox_fence uses: a stop task, then
    status/current read stopped."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.drill.run import inject

    client, api, dummy = make()
    out = inject(client, {'vmid': 100, 'node': 'pve1'}, UUID, 'power_off', stop_timeout=30)
    assert out == {'fault': 'power_off', 'vmid': 100, 'fenced': True}
    assert api.vm.status == 'stopped'
    assert [p for m, p in api.writes()] == ['nodes/pve1/qemu/100/status/stop']


def test_drill_hard_stop_refuses_another_vm():
    """The identity check of the fence plan holds for the drill too: a VM with another SMBIOS UUID is not stopped."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.drill.run import inject
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.errors import ProxmoxError

    client, api, dummy = make()
    with pytest.raises(ProxmoxError) as err:
        inject(client, {'vmid': 100, 'node': 'pve1'}, '00000000-0000-0000-0000-000000000001', 'power_off')
    assert err.value.kind == E.IDENTITY
    assert api.writes() == [] and api.vm.status == 'running'
