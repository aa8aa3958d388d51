"""Table: for each fault, proxmox_fence's verdict agrees with the fence_pve agent's, or is stricter.

Each case gets two identical VMs with the same fault: one is fenced by the module, the other by
/usr/sbin/fence_pve (ClusterLabs, password login). A verdict is "fenced" (module: fenced=true;
fence_pve: exit 0 for `off`). The module may never claim fenced where fence_pve fails, and whenever it
claims fenced the VM really is stopped in the fake (ground truth). Every failing case must end failed
with fenced=false and the expected error kind.
"""

from __future__ import annotations

import os
import time

import pytest

from proxmox_fence_helpers import FENCE_PVE, add_vm, fence_pve, run_module, writes

pytestmark = pytest.mark.fakepve(time_scale=0.01)


def lock(pve, vmid, node):
    pve.snapshot_lock(vmid, 'backup')


def failing_task(pve, vmid, node):
    # PVE's own error, raised inside the worker: the POST answers a UPID whose task fails.
    pve.fail('POST', '/nodes/{0}/qemu/{1}/status/stop'.format(node, vmid), error='quit_powerdown_failed')


def stop_hangs(pve, vmid, node):
    pve.vm(vmid).stop_secs = 100000


def host_offline(pve, vmid, node):
    pve.set_node_offline(node)


def no_quorum(pve, vmid, node):
    pve.lose_quorum()


def network_down(pve, vmid, node):
    pve.flaky_network(drop_rate=1.0)


def network_hangs(pve, vmid, node):
    # Every answer is held 4 s (time_scale 0.01): longer than the module's api_timeout (1 s) and
    # fence_pve's --shell-timeout (3 s).
    pve.flaky_network(hang_rate=1.0, hang_secs=400)


def nothing(pve, vmid, node):
    pass


# id, fault, HA-managed, action, module options, expected module error kind (None: success)
CASES = [
    ('healthy', nothing, False, 'off', {}, None),
    ('healthy_ha', nothing, True, 'off', {}, None),
    ('already_off', nothing, False, 'off', {'_status': 'stopped'}, None),
    ('status_on', nothing, False, 'status', {}, None),
    ('locked_vm', lock, False, 'off', {}, 'locked'),
    ('failed_task', failing_task, False, 'off', {}, 'task_failed'),
    ('stop_hangs', stop_hangs, False, 'off', {'stop_timeout': 2}, 'timeout'),
    ('host_offline', host_offline, True, 'off', {}, 'host_offline'),
    ('host_offline_status', host_offline, False, 'status', {}, 'host_offline'),
    ('lost_quorum', no_quorum, False, 'off', {}, 'no_quorum'),
    ('lost_quorum_ha', no_quorum, True, 'off', {}, 'no_quorum'),
    ('bad_password', nothing, False, 'off', {'_password': 'wrong'}, 'auth_rejected'),
    ('network_down', network_down, False, 'off', {}, 'network'),
    ('network_hangs', network_hangs, False, 'off', {'api_timeout': 1}, 'timeout'),
]


@pytest.mark.parametrize('name, fault, ha, action, options, kind', CASES, ids=[c[0] for c in CASES])
def test_module_agrees_with_fence_pve_or_is_stricter(pve, auth, record_property, name, fault, ha, action, options,
                                                     kind):
    assert os.access(FENCE_PVE, os.X_OK), 'fence_pve missing: apt-get install fence-agents (make tools)'
    options = dict(options)
    node = 'pve2' if ha else 'pve1'
    status = options.pop('_status', 'running')
    password = options.pop('_password', 'secret')
    mine, theirs = (130, 131)
    add_vm(pve, mine, node, status=status, ha=ha)
    add_vm(pve, theirs, node, status=status, ha=ha)
    for vmid in (mine, theirs):
        fault(pve, vmid, node)

    mark = len(pve.requests)
    started = time.monotonic()
    failed, res = run_module(dict(auth(api_password=password), vmid=mine, action=action, **options))
    module_secs = time.monotonic() - started

    started = time.monotonic()
    code, output = fence_pve(pve, action, theirs, node, password=password, power_timeout=3 if kind is None else 1)
    agent_secs = time.monotonic() - started

    # The verdicts
    module_ok = not failed
    agent_ok = code == 0 or (action == 'status' and code == 2)
    if action == 'off':
        module_fenced = res['fenced'] is True
        agent_fenced = code == 0
        assert not module_fenced or agent_fenced, 'module claims fenced where fence_pve fails: {0}'.format(output)
        if module_fenced:
            assert pve.vm(mine).status == 'stopped'  # ground truth
    assert module_ok == agent_ok or (agent_ok and not module_ok), (res, code, output)
    record_property('verdicts', {'module_ok': module_ok, 'fence_pve_ok': agent_ok, 'fence_pve_exit': code,
                                 'module_secs': round(module_secs, 2), 'fence_pve_secs': round(agent_secs, 2)})
    print('\n{0:22} module {1:5} fence_pve {2:5} (exit {3}) module {4:.2f}s fence_pve {5:.2f}s'.format(
        name, 'ok' if module_ok else 'FAIL', 'ok' if agent_ok else 'FAIL', code, module_secs, agent_secs))

    # The module's own contract for the case
    if kind is None:
        assert module_ok, res
        if action == 'off':
            assert res['fenced'] is True and res['power_state_after'] == 'stopped'
    else:
        assert failed, res
        assert res['fenced'] is False
        assert res['error']['kind'] == kind, res['error']
    if kind in ('host_offline', 'no_quorum', 'auth_rejected', 'network'):
        # refused or failed before any write to the module's VM
        assert [w for w in writes(pve, mark) if '/qemu/{0}/'.format(mine) in w[1]] == []
    if kind == 'host_offline':
        assert res['power_state_before'] == 'unknown' and res['power_state_after'] == 'unknown'
    if kind == 'task_failed':
        assert res['exitstatus'] == 'VM quit/powerdown failed'
        assert res['error']['task_log'][-1] == 'TASK ERROR: VM quit/powerdown failed'
        assert res['upid'] and ':qmstop:{0}:'.format(mine) in res['upid']
    if kind == 'timeout' and name == 'stop_hangs':
        assert 2 <= module_secs < 5 and res['power_state_after'] == 'running'
    if kind == 'locked':
        assert 'VM is locked (backup)' in res['msg']
