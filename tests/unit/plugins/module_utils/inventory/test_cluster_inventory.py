"""build_inventory / read_cluster: nodes matched to VMs by SMBIOS UUID only, and why a node is unfenceable."""

from __future__ import annotations

from ansible_collections.tazlab.resilience.plugins.module_utils.inventory.cluster import build_inventory, read_cluster
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.errors import API, ProxmoxError


def node(name, uuid, ip, cp=False, ready='True'):
    labels = {'node-role.kubernetes.io/control-plane': ''} if cp else {}
    return {'metadata': {'name': name, 'labels': labels},
            'status': {'nodeInfo': {'systemUUID': uuid},
                       'addresses': [{'type': 'Hostname', 'address': name}, {'type': 'InternalIP', 'address': ip}],
                       'conditions': [{'type': 'Ready', 'status': ready}]}}


def vm(vmid, name, host, uuid, hastate=None):
    return {'vmid': vmid, 'name': name, 'node': host, 'status': 'running', 'hastate': hastate, 'uuid': uuid}


def test_matching_is_by_uuid_case_insensitive_never_by_name():
    cluster = {'nodes': [node('cp-01', 'AAAA-1', '10.0.0.1', cp=True), node('w-01', 'bbbb-2', '10.0.0.2')],
               'vms': [vm(100, 'w-01', 'pve1', 'cccc-9'), vm(101, 'cp-01', 'pve1', 'aaaa-1', 'started'),
                       vm(102, 'something-else', 'pve2', 'bbbb-2', 'ignored')]}
    out = build_inventory(cluster, talos_port=50001)
    assert out['hosts']['w-01']['proxmox_vmid'] == 102 and out['hosts']['w-01']['proxmox_node'] == 'pve2'
    assert out['hosts']['w-01']['proxmox_ha_managed'] is False      # HA state ignored = not managed
    assert out['hosts']['cp-01']['proxmox_vmid'] == 101 and out['hosts']['cp-01']['proxmox_ha_managed'] is True
    assert out['hosts']['cp-01']['talos_endpoint'] == '10.0.0.1:50001'
    assert out['groups']['control_plane'] == ['cp-01'] and out['groups']['workers'] == ['w-01']
    assert out['groups']['pve_pve1'] == ['cp-01'] and out['groups']['pve_pve2'] == ['w-01']
    assert out['groups']['unfenceable'] == []


def test_no_vm_several_vms_unreadable_vms_and_no_uuid_are_unfenceable():
    cluster = {'nodes': [node('a', 'u-a', '10.0.0.1'), node('b', 'u-b', '10.0.0.2'), node('c', '', '10.0.0.3')],
               'vms': [vm(1, 'b', 'pve1', 'u-b'), vm(2, 'b-clone', 'pve2', 'U-B')]}
    out = build_inventory(cluster)
    assert out['groups']['unfenceable'] == ['a', 'b', 'c']
    assert 'no VM carries' in out['unfenceable']['a']
    assert '2 VMs carry' in out['unfenceable']['b'] and out['hosts']['b']['proxmox_vmids'] == [1, 2]
    assert out['hosts']['b']['proxmox_vmid'] is None and 'pve_pve1' not in out['groups']
    assert 'no status.nodeInfo.systemUUID' in out['unfenceable']['c']
    cluster['unreadable_vms'] = [{'vmid': 7, 'node': 'pve3', 'error': '595 No route to host'}]
    assert 'cannot be read' in build_inventory(cluster)['unfenceable']['a']


class FakePve(object):
    def __init__(self):
        self.resources = [
            {'type': 'qemu', 'vmid': 1, 'name': 'x', 'node': 'pve1', 'status': 'running'},
            {'type': 'qemu', 'vmid': 2, 'name': 'y', 'node': 'pve2', 'status': 'running', 'hastate': 'started'},
            {'type': 'qemu', 'vmid': 3, 'name': 'tmpl', 'node': 'pve1', 'template': 1},
            {'type': 'lxc', 'vmid': 4, 'name': 'ct', 'node': 'pve1'}]

    def cluster_status(self):
        return {'quorate': True, 'nodes': {'pve1': True, 'pve2': False}}

    def get(self, path, **params):
        assert path == 'cluster/resources' and params == {'type': 'vm'}
        return self.resources

    def vm_config(self, host, vmid):
        if host == 'pve2':
            raise ProxmoxError(API, '595 No route to host', status=595)
        return {'smbios1': 'uuid={{U-{0}}},manufacturer=QEMU'.format(vmid)}


class FakeK8s(object):
    def list_nodes(self):
        return [node('n', 'u-1', '10.0.0.9')]


def test_read_cluster_reads_every_qemu_vm_config_and_lists_the_unreadable():
    cluster = read_cluster(FakeK8s(), FakePve())
    assert [v['vmid'] for v in cluster['vms']] == [1] and cluster['vms'][0]['uuid'] == 'u-1'
    assert [v['vmid'] for v in cluster['unreadable_vms']] == [2]
    out = build_inventory(cluster)
    assert out['hosts']['n']['proxmox_vmid'] == 1 and out['groups']['unfenceable'] == []


def test_the_inventory_decides_as_the_fence_does():
    """One rule (proxmox.identity.match_node): a VM bearing the node's name whose UUID cannot be read may
    be the node's real VM, so a single readable match does not make the node fenceable."""
    from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import identity

    cluster = {'nodes': [node('w', 'u-w', '10.0.0.5')], 'vms': [vm(5, 'w-old', 'pve1', 'u-w')],
               'unreadable_vms': [{'vmid': 6, 'node': 'pve2', 'name': 'w', 'error': 'PVE node pve2 is offline'}]}
    out = build_inventory(cluster)
    candidates = [dict(vm(5, 'w-old', 'pve1', 'u-w'), smbios_uuid='u-w'),
                  {'vmid': 6, 'node': 'pve2', 'name': 'w', 'smbios_uuid': None, 'identity_readable': False}]
    assert identity.match_node(candidates, 'u-w', 'w')['identity'] == identity.UNREADABLE
    assert out['groups']['unfenceable'] == ['w'] and out['hosts']['w']['proxmox_vmid'] is None
    assert '6 on pve2' in out['unfenceable']['w']
