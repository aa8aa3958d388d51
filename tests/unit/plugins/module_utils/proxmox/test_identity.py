"""Identity by SMBIOS UUID and the power reading right before freeing (no network: a scripted client)."""

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.force_detach import proof_predates_lease
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import errors as E
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.identity import (
    confirm_powered_off, match_node, read_identities)
from ansible_collections.tazlab.resilience.plugins.module_utils.k8s.objects import parse_time

UUID = '5B0D3F1E-8A64-4B8E-9A53-0F4A8D1B7C21'


class Client(object):
    """cluster_status / get(cluster/resources) / vm_config / vm_status, from a list of VMs."""

    def __init__(self, vms, online=None, quorate=True):
        self.vms = vms
        self.online = online or {'pve1': True, 'pve2': True, 'pve3': True}
        self.quorate = quorate
        self.calls = []

    def cluster_status(self):
        return {'quorate': self.quorate, 'nodes': dict(self.online)}

    def get(self, path, **params):
        self.calls.append(('GET', path))
        return [dict(type='qemu', vmid=v['vmid'], node=v['node'], name=v['name'], status=v['status'])
                for v in self.vms]

    def _vm(self, node, vmid):
        if not self.online.get(node):
            raise E.ProxmoxError(E.HOST_OFFLINE, 'No route to host', status=595)
        return next(v for v in self.vms if v['vmid'] == vmid)

    def vm_config(self, node, vmid):
        self.calls.append(('GET', 'config', vmid))
        return {'smbios1': 'uuid=' + self._vm(node, vmid)['uuid']}

    def vm_status(self, node, vmid):
        self.calls.append(('GET', 'status', vmid))
        vm = self._vm(node, vmid)
        return {'status': vm['status'], 'ha': vm.get('ha') or {'managed': 0}}


def vm(vmid, name, node, status, uuid=UUID, **kw):
    return dict(vmid=vmid, name=name, node=node, status=status, uuid=uuid, **kw)


def test_exactly_one_vm_stopped_now_is_confirmed():
    client = Client([vm(106, 'worker-new-03', 'pve2', 'stopped'), vm(101, 'cp-01', 'pve1', 'running', 'other')])
    ok, info, reasons = confirm_powered_off(client, UUID.lower(), 'worker-new-03')
    assert ok and info['vmid'] == 106 and info['status'] == 'stopped' and reasons == []
    assert ('GET', 'status', 106) in client.calls  # status/current read now, not the listing


def test_duplicate_uuid_refused_with_vmids_and_hosts():
    client = Client([vm(106, 'worker-new-03', 'pve2', 'running'), vm(100, 'worker-new-03', 'pve1', 'stopped')])
    ok, info, reasons = confirm_powered_off(client, UUID, 'worker-new-03')
    assert not ok and info['identity'] == 'duplicate'
    assert '106 on pve2' in reasons[0] and '100 on pve1' in reasons[0]


def test_running_vm_refused_and_missing_uuid_said_truthfully():
    ok, info, reasons = confirm_powered_off(Client([vm(106, 'worker-new-03', 'pve2', 'running')]), UUID, 'w')
    assert not ok and 'running now' in reasons[0]
    ok, info, reasons = confirm_powered_off(Client([vm(106, 'worker-new-03', 'pve2', 'stopped', 'x')]), UUID, 'w')
    assert not ok and 'no VM carries the SMBIOS UUID' in reasons[0] and 'offline' not in reasons[0]


def test_ha_about_to_start_it_and_no_quorum_are_refused():
    ha = {'managed': 1, 'state': 'started'}
    ok, dummy, reasons = confirm_powered_off(Client([vm(106, 'w', 'pve2', 'stopped', ha=ha)]), UUID, 'w')
    assert not ok and 'HA manager is about to start it' in reasons[0]
    ok, dummy, reasons = confirm_powered_off(Client([vm(106, 'w', 'pve2', 'stopped')], quorate=False), UUID, 'w')
    assert not ok and 'not quorate' in reasons[0]


def test_vm_on_an_offline_host_is_unreadable_not_stopped():
    client = Client([vm(106, 'worker-new-03', 'pve2', 'stopped')], online={'pve1': True, 'pve2': False})
    vms = read_identities(client)
    assert vms[0]['identity_readable'] is False and vms[0]['smbios_uuid'] is None
    found = match_node(vms, UUID, 'worker-new-03')
    assert found['identity'] == 'unreadable' and 'offline' in found['reason']


def test_renamed_vm_found_by_uuid():
    client = Client([vm(106, 'renamed', 'pve2', 'stopped'), vm(100, 'worker-new-03', 'pve1', 'stopped', 'x')])
    ok, info, reasons = confirm_powered_off(client, UUID, 'worker-new-03')
    assert ok and info['vmid'] == 106


def test_stale_proof_predates_the_lease_renewal():
    """Unsafe case 2: a proof from an earlier incident; the node came back (lease renewed) and was partitioned."""
    server_now = parse_time('2026-01-25T21:00:00Z')
    wall_now = parse_time('2026-12-02T20:00:00Z')  # another clock: only the proof's age is used
    lease = {'spec': {'renewTime': '2026-01-25T20:58:00Z'}}
    old = {'fenced': True, 'timestamp': '2026-12-02T19:50:00Z'}  # 600 s old: before the renewal
    assert 'stale proof' in proof_predates_lease(old, lease, server_now, wall_now)
    fresh = {'fenced': True, 'timestamp': '2026-12-02T19:59:30Z'}  # 30 s old: after the renewal
    assert proof_predates_lease(fresh, lease, server_now, wall_now) is None


@pytest.mark.parametrize('names', [[''], ['bad name'], ['-x'], ['a/b']])
def test_malformed_names_rejected(names):
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.inventory import check_names
    with pytest.raises(E.ProxmoxError):
        check_names(names)
