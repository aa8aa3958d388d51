"""proxmox_fence with k8s_node: "fence worker-new-03" as one task, against the lab world.

The module reads the node's systemUUID from the Kubernetes twin (HTTPS, CA verified), finds the VM named
like the node in the world's Proxmox (fakepve, CA verified), checks the SMBIOS UUID and stops it; the
Kubernetes twin then sees the node go NotReady. A node whose VM carries another UUID is refused before any
Proxmox write.
"""

from __future__ import annotations

import pytest

from k8s_lab import TIME_SCALE, Lab, ansible_adhoc

pytestmark = pytest.mark.lab_world(time_scale=TIME_SCALE)


def test_fence_by_kubernetes_node_name(lab_world, tmp_path):
    lab = Lab(lab_world)
    assert lab.node_ready('worker-new-03') == 'True'
    args = dict(lab.proxmox_auth(), k8s_node='worker-new-03', k8s_auth=lab.k8s_auth(), state='off', poll_interval=0.05)
    rc, status, res = ansible_adhoc(tmp_path, 'proxmox_fence', args)
    assert rc == 0 and status == 'CHANGED', res
    node = lab.get('nodes', None, 'worker-new-03')
    assert res['fenced'] is True and res['power_state_after'] == 'stopped' and res['name'] == 'worker-new-03'
    assert res['smbios_uuid'].lower() == node['status']['nodeInfo']['systemUUID'].lower()
    vm = lab.world.proxmox.pve.vm(res['vmid'])
    assert vm.status == 'stopped'
    lab.wait(lambda: lab.node_ready('worker-new-03') == 'Unknown', 120, 'worker-new-03 NotReady')
    # Fencing it again changes nothing and still proves it is off.
    rc, status, res = ansible_adhoc(tmp_path, 'proxmox_fence', args)
    assert rc == 0 and status == 'SUCCESS' and res['changed'] is False and res['fenced'] is True


def test_node_and_vm_that_do_not_match_are_refused_before_any_write(lab_world, tmp_path):
    lab = Lab(lab_world)
    pve = lab.world.proxmox.pve
    # the VM of worker-new-04, targeted while naming the Kubernetes node worker-new-03: the UUIDs differ
    vmid = next(spec.vmid for spec in lab.world.proxmox.specs if spec.name == 'worker-new-04')
    before = len(pve.requests)
    args = dict(lab.proxmox_auth(), k8s_node='worker-new-03', k8s_auth=lab.k8s_auth(), vmid=vmid)
    rc, status, res = ansible_adhoc(tmp_path, 'proxmox_fence', args)
    assert rc != 0 and status == 'FAILED!'
    assert res['fenced'] is False and res['error']['kind'] == 'identity_mismatch', res
    assert [r for r in pve.requests[before:] if r[0] in ('POST', 'PUT', 'DELETE')] == []
    assert pve.vm(vmid).status == 'running'
