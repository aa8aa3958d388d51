"""vm_power_states against a real fakepve server (loopback, TLS verified with its CA)."""
import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import ConnectionSettings
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import ProxmoxClient
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.inventory import vm_power_states


@pytest.fixture
def pve(fakepve):
    if 'pve2' not in fakepve.nodes:
        fakepve.add_node('pve2')
    fakepve.add_vm(101, 'cp-01', status='running', node='pve1')
    fakepve.add_vm(103, 'worker-new-03', status='stopped', node='pve2')
    fakepve.add_vm(104, 'worker-new-04', status='running', node='pve2')
    return fakepve


def client(fakepve, cafile):
    host, port = fakepve.url.split('://')[1].rsplit(':', 1)
    return ProxmoxClient(ConnectionSettings(api_host=host, api_port=int(port), api_user='root@pam',
                                            api_password='secret', ca_path=cafile))


def test_every_vm_with_its_power_state_in_two_requests(pve, fakepve_cafile):
    c = client(pve, fakepve_cafile)
    out = vm_power_states(c)
    assert [(v['name'], v['node'], v['status']) for v in out['vms']] == [
        ('cp-01', 'pve1', 'running'), ('worker-new-03', 'pve2', 'stopped'), ('worker-new-04', 'pve2', 'running')]
    assert out['quorate'] is True
    # identity is the SMBIOS UUID: one config read per VM on top of the two listing requests
    gets = [call for call in c.calls if call[0] == 'GET']
    assert gets[:2] == [('GET', 'cluster/status'), ('GET', 'cluster/resources')]
    assert sorted(gets[2:]) == [('GET', 'nodes/pve1/qemu/101/config'), ('GET', 'nodes/pve2/qemu/103/config'),
                                ('GET', 'nodes/pve2/qemu/104/config')]
    assert out['by_name']['worker-new-03']['vmid'] == 103
    c.calls[:] = []
    vm_power_states(c, identities=False)
    assert [call for call in c.calls if call[0] == 'GET'] == [('GET', 'cluster/status'), ('GET', 'cluster/resources')]
    assert [v['name'] for v in vm_power_states(c, names=['cp-01'])['vms']] == ['cp-01']


def test_vm_on_an_offline_pve_node_is_unknown_never_stopped(pve, fakepve_cafile):
    pve.set_node_offline('pve2')
    out = vm_power_states(client(pve, fakepve_cafile))
    states = {v['vmid']: v['status'] for v in out['vms']}
    assert states[103] == 'unknown' and states[104] == 'unknown' and states[101] == 'running'
    assert out['pve_nodes']['pve2'] is False
