"""proxmox_talos_vms against the provisioning twin (an empty lab: three PVE hosts, Talos templates and ISO):
the plan in check mode, VMs cloned and created with their SMBIOS UUIDs, control planes on distinct hosts and in
HA, the maintenance address from the guest agent, a rerun without a write, the refusals before any write."""

import pytest

from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox import errors as E
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.auth import ConnectionSettings
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.client import ProxmoxClient
from ansible_collections.tazlab.resilience.plugins.module_utils.proxmox.provision import ensure_vms

EMPTY = pytest.mark.lab_world(scenario="empty", settle=5.0)
UUIDS = ['4c4c4544-00{0:02d}-4d10-8051-b4c04f4e37{0:02d}'.format(i) for i in range(71, 80)]


def client(world):
    px = world.proxmox
    # The lab's clock moves with advance(): the client's waits move it instead of sleeping.
    return ProxmoxClient(ConnectionSettings(api_host=px.host, api_port=px.port, api_user=px.user,
                                            api_token_id=px.token_name, api_token_secret=px.token_secret,
                                            ca_path=px.cafile), sleep=lambda secs: world.advance(min(secs, 2.0)))


def nodes(world, workers=1):
    version = world.provisioner.version
    out = [dict(name='cp-%02d' % (i + 1), role='controlplane', uuid=UUIDS[i],
                template='talos-{0}-template'.format(version)) for i in range(3)]
    out += [dict(name='worker-%02d' % (i + 1), role='worker', uuid=UUIDS[3 + i], iso=world.provisioner.iso_volid)
            for i in range(workers)]
    return out


def params(vms, **kw):
    p = dict(vms=vms, defaults=dict(storage='local-lvm', bridge='vmbr0'), allow_colocation=False, read_addresses=True,
             exclude_addresses=[], timeout=120, address_timeout=240)
    p.update(kw)
    return p


@EMPTY
def test_plan_create_rerun_and_refusals(lab_world):
    c = client(lab_world)
    plan = ensure_vms(c, params(nodes(lab_world)), check_mode=True)
    assert c.writes == []
    assert [p['actions'] for p in plan['plan']] == [['clone', 'configure', 'ha_add', 'start']] * 3 + [['create', 'start']]
    assert sorted(p['host'] for p in plan['plan'][:3]) == ['pve1', 'pve2', 'pve3']

    c = client(lab_world)
    out = ensure_vms(c, params(nodes(lab_world)))
    assert out['changed'] is True
    pve = lab_world.proxmox.pve
    for vm in out['vms']:
        cfg = pve.vm(vm['vmid']).config
        assert 'uuid=' + vm['uuid'] in cfg['smbios1']
        assert vm['status'] == 'running' and vm['address'] and vm['address_source'] == 'guest_agent'
    cps = [v for v in out['vms'] if v['role'] == 'controlplane']
    assert len(set(v['host'] for v in cps)) == 3
    ha = c.get('cluster/ha/resources')
    assert sorted(r['sid'] for r in ha) == sorted('vm:%d' % v['vmid'] for v in cps)
    assert len(set(v['address'] for v in out['vms'])) == 4

    again = client(lab_world)
    rerun = ensure_vms(again, params(nodes(lab_world)))
    assert rerun['changed'] is False and again.writes == []
    assert [v['address'] for v in rerun['vms']] == [v['address'] for v in out['vms']]

    refused = client(lab_world)
    four = nodes(lab_world) + [dict(name='cp-04', role='controlplane', uuid=UUIDS[8],
                                    template='talos-{0}-template'.format(lab_world.provisioner.version))]
    with pytest.raises(E.ProxmoxError, match='4 control planes but only 3 online'):
        ensure_vms(refused, params(four))
    assert refused.writes == []
