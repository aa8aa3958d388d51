"""proxmox_fence and Proxmox HA as PVE 8/9 behave, against the lab's HA model around fakepve.

The lab stores what PUT /cluster/ha/resources/{sid} sets and answers status/current as PVE does
(`ignored` -> {managed: 0}); the module reads the requested state back from /cluster/ha/resources/{sid}.
"""

from __future__ import annotations

import pytest
import requests

from k8s_lab import TIME_SCALE, Lab

pytestmark = pytest.mark.lab_world(time_scale=TIME_SCALE)


def api(lab, method, path, **data):
    px = lab.world.proxmox
    headers = {'Authorization': 'PVEAPIToken={0}={1}'.format(px.token_id, px.token_secret)}
    resp = requests.request(method, '{0}/api2/json/{1}'.format(px.url, path), headers=headers, data=data or None,
                            verify=px.cafile, timeout=10)
    return resp.status_code, (resp.json() or {}).get('data')


def cp_vm(lab):
    spec = next(s for s in lab.world.proxmox.specs if s.ha)
    return spec.name, spec.vmid


def test_ignored_is_stored_read_back_and_restore_gives_the_vm_back_to_ha(lab_world):
    lab = Lab(lab_world)
    node, vmid = cp_vm(lab)
    code, res = api(lab, 'GET', 'cluster/ha/resources/vm:{0}'.format(vmid))
    assert code == 200 and 'state' not in res  # never set: PVE omits it (= started)
    failed, res = lab.fence(node, state='off', ha_state='ignored')
    assert not failed and res['fenced'] is True, res
    code, ha = api(lab, 'GET', 'cluster/ha/resources/vm:{0}'.format(vmid))
    assert ha['state'] == 'ignored'
    code, cur = api(lab, 'GET', 'nodes/{0}/qemu/{1}/status/current'.format(res['node'], vmid))
    assert cur['status'] == 'stopped' and cur['ha'] == {'managed': 0}
    # the stop was direct (qmstop), not through HA (hastop): HA ignores the VM
    assert ':qmstop:{0}:'.format(vmid) in res['upid']
    failed, again = lab.fence(node, state='off', ha_state='ignored')
    assert not failed and again['changed'] is False and again['fenced'] is True
    # restore: the requested state goes back to started and the VM runs
    failed, on = lab.fence(node, state='on')
    assert not failed and on['power_state_after'] == 'running', on
    code, ha = api(lab, 'GET', 'cluster/ha/resources/vm:{0}'.format(vmid))
    assert ha['state'] == 'started'
    code, cur = api(lab, 'GET', 'nodes/{0}/qemu/{1}/status/current'.format(on['node'], vmid))
    assert cur['ha'] == {'managed': 1, 'state': 'started'}
    failed, second = lab.fence(node, state='on')
    assert not failed and second['changed'] is False


def test_disabled_reads_stopped_and_is_restored(lab_world):
    lab = Lab(lab_world)
    node, vmid = cp_vm(lab)
    failed, res = lab.fence(node, state='off', ha_state='disabled')
    assert not failed and res['fenced'] is True, res
    code, ha = api(lab, 'GET', 'cluster/ha/resources/vm:{0}'.format(vmid))
    code, cur = api(lab, 'GET', 'nodes/{0}/qemu/{1}/status/current'.format(res['node'], vmid))
    assert ha['state'] == 'disabled' and cur['ha'] == {'managed': 1, 'state': 'stopped'}
    failed, again = lab.fence(node, state='off', ha_state='disabled')
    assert not failed and again['changed'] is False
    failed, on = lab.fence(node, state='on')
    assert not failed and on['power_state_after'] == 'running'
    assert api(lab, 'GET', 'cluster/ha/resources/vm:{0}'.format(vmid))[1]['state'] == 'started'


def test_first_run_on_a_powered_off_ha_control_plane_succeeds(lab_world):
    lab = Lab(lab_world)
    node, vmid = cp_vm(lab)
    lab.handle.fault('power-loss', node)
    failed, res = lab.fence(node, state='off', ha_state='ignored')
    assert not failed and res['fenced'] is True and res['power_state_after'] == 'stopped', res
    assert api(lab, 'GET', 'cluster/ha/resources/vm:{0}'.format(vmid))[1]['state'] == 'ignored'


def test_put_on_a_vm_that_is_no_ha_resource_fails_as_pve(lab_world):
    lab = Lab(lab_world)
    spec = next(s for s in lab.world.proxmox.specs if not s.ha)
    code = api(lab, 'PUT', 'cluster/ha/resources/vm:{0}'.format(spec.vmid), state='ignored')[0]
    assert code == 500
    ha_vmid = next(s for s in lab.world.proxmox.specs if s.ha).vmid
    code = api(lab, 'PUT', 'cluster/ha/resources/vm:{0}'.format(ha_vmid), state='bogus')[0]
    assert code == 400
